// Types of control-plane.mjs for the TypeScript tests.
export interface ControlPlane {
  /** Path of the admin kubeconfig (client certificate, group system:masters). */
  readonly kubeconfig: string;
  readonly server: string;
  readonly dir: string;
  readonly pids: readonly number[];
  /** SIGTERM, then SIGKILL after 20 s; removes the directory. */
  stop(): Promise<void>;
  /** SIGKILL at once; removes the directory. */
  kill(): void;
  readonly apiPort: number;
  /** etcd's client URL. */
  readonly etcd: string;
  /** Paths of the binaries by name. */
  readonly bin: Record<string, string>;
}
export function ensureBinaries(): Promise<Record<string, string>>;
export function startControlPlane(options?: {
  readyTimeoutMs?: number;
  detached?: boolean;
  /** A node's name and address: the apiserver also serves that address and authorizes kubelets (node.mjs). */
  node?: { name: string; ip: string };
  /** Where certificates, etcd's data and the kubeconfig go (default: a new temporary directory). */
  dir?: string;
  /** A directory for each daemon's log (default: discarded). */
  logs?: string;
}): Promise<ControlPlane>;
/** Whether `pid` runs (a zombie counts as gone). */
export function alive(pid: number): boolean;
