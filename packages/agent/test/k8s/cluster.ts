// A real control plane for one test file (control-plane.mjs: etcd, kube-apiserver with RBAC, and
// kube-controller-manager), the admin API clients, and helpers to create what the tests need. No fake API server.
import { execFile } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';
import type { V1Secret } from '@kubernetes/client-node';
import { parse, stringify } from 'yaml';
import { afterAll, beforeAll } from 'vitest';
import { connect, statusOf, type Kube } from '../../src/k8s/kube.js';
import { REPO_ROOT } from '../helpers/cli.js';
import { startControlPlane, type ControlPlane } from './control-plane.mjs';

export const CRD_FILE = join(REPO_ROOT, 'deploy', 'crds', 'phasesecrets.secrets.phase.dev.yaml');
/** deploy/'s Helm chart for the operator. */
export const CHART = join(REPO_ROOT, 'deploy', 'helm', 'phasekit-operator');

/** A helm that keeps its cache, config and data under `home` (never the user's); each call resolves with stdout. */
export function helmIn(home: string, binary = 'helm'): (args: string[]) => Promise<string> {
  return async (args) => {
    const { stdout } = await promisify(execFile)(binary, args, {
      env: {
        ...process.env,
        HELM_CACHE_HOME: join(home, 'cache'),
        HELM_CONFIG_HOME: join(home, 'config'),
        HELM_DATA_HOME: join(home, 'data'),
      },
      maxBuffer: 16 * 1024 * 1024,
    });
    return stdout;
  };
}

export interface Cluster {
  readonly plane: ControlPlane;
  readonly kube: Kube;
  /** Creates a namespace (ignores one that exists). */
  namespace(name: string): Promise<void>;
}

/** Creates any object by its apiVersion and kind, through the generic custom-objects path (no model rewriting). */
export async function createRaw(kube: Kube, obj: Record<string, unknown>, plural: string): Promise<void> {
  const [group, version] = String(obj['apiVersion']).includes('/')
    ? String(obj['apiVersion']).split('/')
    : ['', String(obj['apiVersion'])];
  const namespace = (obj['metadata'] as { namespace?: string } | undefined)?.namespace;
  if (group === '') throw new Error('createRaw is for API groups; use the typed core API');
  if (namespace === undefined) {
    await kube.custom.createClusterCustomObject({ group: group!, version: version!, plural, body: obj });
  } else {
    await kube.custom.createNamespacedCustomObject({
      group: group!,
      version: version!,
      namespace,
      plural,
      body: obj,
    });
  }
}

/** Applies deploy/'s CRD and waits until PhaseSecrets can be listed. */
export async function applyCrd(kube: Kube): Promise<void> {
  const crd = parse(readFileSync(CRD_FILE, 'utf8')) as Record<string, unknown>;
  await createRaw(kube, crd, 'customresourcedefinitions');
  for (let i = 0; ; i++) {
    try {
      await kube.custom.listClusterCustomObject({
        group: 'secrets.phase.dev',
        version: 'v1alpha1',
        plural: 'phasesecrets',
      });
      return;
    } catch (error) {
      if (i > 100) throw error;
      await sleep(100);
    }
  }
}

/** Starts a control plane before the file's tests and kills it after them. */
export function useCluster(): Cluster {
  let plane: ControlPlane | undefined;
  let kube: Kube | undefined;
  beforeAll(async () => {
    plane = await startControlPlane();
    kube = connect(plane.kubeconfig);
    await applyCrd(kube);
  }, 600_000);
  afterAll(() => plane?.kill());
  return {
    get plane() {
      if (plane === undefined) throw new Error('the control plane starts in beforeAll');
      return plane;
    },
    get kube() {
      if (kube === undefined) throw new Error('the control plane starts in beforeAll');
      return kube;
    },
    async namespace(name: string) {
      try {
        await kube!.core.createNamespace({ body: { metadata: { name } } });
      } catch (error) {
        if (statusOf(error) !== 409) throw error;
      }
    },
  };
}

/** Polls `check` until it returns a value other than undefined or false; fails naming `what` after `ms`. */
export async function eventually<T>(
  check: () => Promise<T | undefined | false>,
  what: string,
  ms = 20_000,
): Promise<T> {
  const deadline = Date.now() + ms;
  let last: unknown;
  for (;;) {
    try {
      const value = await check();
      if (value !== undefined && value !== false) return value;
    } catch (error) {
      last = error;
    }
    if (Date.now() > deadline) {
      throw new Error(
        `timed out after ${ms} ms waiting for ${what}${last instanceof Error ? ` (last error: ${last.message})` : ''}`,
      );
    }
    await sleep(100);
  }
}

/** A Secret, or undefined when there is none. */
export async function readSecret(kube: Kube, name: string, namespace: string): Promise<V1Secret | undefined> {
  try {
    return await kube.core.readNamespacedSecret({ name, namespace });
  } catch (error) {
    if (statusOf(error) === 404) return undefined;
    throw error;
  }
}

/** A Secret's data, decoded to strings. */
export const decoded = (secret: V1Secret | undefined): Record<string, string> =>
  Object.fromEntries(
    Object.entries(secret?.data ?? {}).map(([k, v]) => [k, Buffer.from(v, 'base64').toString()]),
  );

/** A copy of the plane's admin kubeconfig whose user presents `token` instead, written as `name` in its directory. */
export function kubeconfigWithToken(plane: ControlPlane, token: string | undefined, name: string): string {
  const config = parse(readFileSync(plane.kubeconfig, 'utf8')) as {
    users: { user: Record<string, unknown> }[];
  };
  for (const entry of config.users) entry.user = { token };
  const path = join(plane.dir, name);
  writeFileSync(path, stringify(config), { mode: 0o600 });
  return path;
}
