// The Kubernetes API as the agent uses it: one KubeConfig (a file, or the pod's in-cluster config), the typed API
// groups, and errors turned into AgentErrors whose messages come from the API's Status, never from a request body.
import * as k8s from '@kubernetes/client-node';
import { AgentError, AgentErrorCode } from '../errors.js';

/** The API clients the agent needs, from one KubeConfig. */
export interface Kube {
  readonly config: k8s.KubeConfig;
  readonly core: k8s.CoreV1Api;
  readonly apps: k8s.AppsV1Api;
  readonly custom: k8s.CustomObjectsApi;
  readonly coordination: k8s.CoordinationV1Api;
  readonly authorization: k8s.AuthorizationV1Api;
}

/**
 * Loads a kubeconfig: `path` when given, else KUBECONFIG / ~/.kube/config, else the in-cluster service account.
 *
 * @throws {AgentError} `KUBE_CONFIG` when none is usable.
 */
export function connect(path?: string): Kube {
  const config = new k8s.KubeConfig();
  try {
    if (path !== undefined) config.loadFromFile(path);
    else config.loadFromDefault();
  } catch (error) {
    throw new AgentError(
      AgentErrorCode.KUBE_CONFIG,
      `cannot load the kubeconfig${path === undefined ? '' : ` ${path}`}: ${error instanceof Error ? error.message : 'unreadable'}`,
      { cause: error },
    );
  }
  if (config.getCurrentCluster() === null) {
    throw new AgentError(
      AgentErrorCode.KUBE_CONFIG,
      'no Kubernetes cluster configured: set --kubeconfig or KUBECONFIG, or run in a pod with a service account',
    );
  }
  reuseConnections(config);
  return {
    config,
    core: config.makeApiClient(k8s.CoreV1Api),
    apps: config.makeApiClient(k8s.AppsV1Api),
    custom: config.makeApiClient(k8s.CustomObjectsApi),
    coordination: config.makeApiClient(k8s.CoordinationV1Api),
    authorization: config.makeApiClient(k8s.AuthorizationV1Api),
  };
}

/**
 * @kubernetes/client-node 2.0.1 builds a new undici Agent for every API call (KubeConfig.createDispatcher, called
 * from applySecurityAuthentication, has no cache, unlike createAgent beside it), so every call paid a TLS handshake
 * and left an Agent for the GC: the operator bench measured ~500 MB RSS and a busy API server. One Agent per
 * cluster and user keeps the connections alive. Credentials that change (a rotated service-account token) travel
 * in headers, which are set per call, so sharing the Agent is safe.
 */
function reuseConnections(config: k8s.KubeConfig): void {
  const target = config as unknown as { createDispatcher?: (cluster: unknown, options: unknown) => unknown };
  const create = target.createDispatcher;
  if (typeof create !== 'function') return;
  const cache = new Map<string, unknown>();
  target.createDispatcher = (cluster, options) => {
    const c = cluster as { name?: string; server?: string } | null;
    const key = JSON.stringify([c?.name, c?.server, config.getCurrentUser()?.name]);
    if (!cache.has(key)) cache.set(key, create.call(config, cluster, options));
    return cache.get(key);
  };
}

/** The HTTP status of a failed API call, or undefined for a network failure. */
export function statusOf(error: unknown): number | undefined {
  return error instanceof k8s.ApiException ? error.code : undefined;
}

/** The API's own message from a Status body (`secrets "x" already exists`); never the request. */
function apiMessage(error: unknown): string {
  if (error instanceof k8s.ApiException) {
    const body: unknown = error.body;
    let parsed: unknown = body;
    if (typeof body === 'string') {
      try {
        parsed = JSON.parse(body);
      } catch {
        parsed = undefined;
      }
    }
    const message = (parsed as { message?: unknown } | undefined)?.message;
    return typeof message === 'string' ? message.slice(0, 500) : `HTTP ${String(error.code)}`;
  }
  if (error instanceof Error) {
    const code = (error as { code?: unknown }).code;
    return typeof code === 'string' ? code : error.name;
  }
  return 'unknown error';
}

/** Turns a failed API call into an AgentError with the matching code; `what` says what was being done. */
export function kubeError(error: unknown, what: string): AgentError {
  if (error instanceof AgentError) return error;
  const status = statusOf(error);
  const code =
    status === 401 || status === 403
      ? AgentErrorCode.KUBE_FORBIDDEN
      : status === undefined || status === 429 || status >= 500
        ? AgentErrorCode.KUBE_UNAVAILABLE
        : AgentErrorCode.KUBE_REJECTED;
  // No cause: client-node's ApiException message carries the response's headers and body verbatim.
  return new AgentError(code, `${what}: ${apiMessage(error)}`);
}
