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
}
export function ensureBinaries(): Promise<Record<string, string>>;
export function startControlPlane(options?: {
  readyTimeoutMs?: number;
  detached?: boolean;
}): Promise<ControlPlane>;
