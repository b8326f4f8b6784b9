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
export function writeOciArchive(options: {
  out: string;
  files: {
    name: string;
    mode: number;
    uid?: number;
    gid?: number;
    dir?: boolean;
    symlink?: string;
    source?: string;
    data?: Buffer;
  }[];
  config: Record<string, unknown>;
  names: string[];
  architecture?: string;
}): Promise<{ path: string; size: number; digest: string }>;
