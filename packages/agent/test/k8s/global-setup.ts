// Before any test file: the Kubernetes test binaries exist (built from the Go module proxy when missing, once, not
// by each Kubernetes test file at the same time). A machine without Go fails here, saying so: never skipped.
import { ensureBinaries } from './control-plane.mjs';

export async function setup(): Promise<void> {
  await ensureBinaries();
}
