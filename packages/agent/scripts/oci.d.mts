// Types of oci.mjs for the TypeScript tests.
export interface TarEntry {
  name: string;
  type: string;
  mode: number;
  uid: number;
  gid: number;
  linkname: string;
  data: Buffer;
}
export function tarEntries(buf: Buffer): Generator<TarEntry>;
