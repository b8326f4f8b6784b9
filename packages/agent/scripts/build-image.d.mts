// Types of build-image.mjs for the TypeScript tests.
export interface ContainerfileSpec {
  node: string;
  user: string;
  workdir: string;
  entrypoint: string[];
  cmd: string[];
  labels: Record<string, string>;
  copies: string[];
}
export function containerfileSpec(text?: string): ContainerfileSpec;
export function buildImage(options?: {
  out?: string;
}): Promise<{ path: string; size: number; digest: string; version: string }>;
