// Writing one managed Secret: create it, or update it in place under its resourceVersion (retrying a conflict),
// only when something we own changed; never touch a Secret phasekit does not manage unless told to adopt it.
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import type { CoreV1Api, V1OwnerReference, V1Secret } from '@kubernetes/client-node';
import { AgentError, AgentErrorCode } from '../errors.js';
import { kubeError, statusOf } from './kube.js';

/** The label every Secret phasekit writes carries; its absence means "not ours". */
export const MANAGED_BY_LABEL = 'app.kubernetes.io/managed-by';
export const MANAGED_BY = 'phasekit';
/** The content annotation: an HMAC of type and data (never the data or a plain hash of it). */
export const DATA_HMAC_ANNOTATION = 'secrets.phasekit.dev/data-hmac';
/** The Secret that holds the HMAC key, in the namespace the writer keeps it in. */
export const HMAC_KEY_SECRET = 'phasekit-hmac-key';

/** What the Secret should look like. Labels and annotations are merged into the existing ones. */
export interface DesiredSecret {
  readonly namespace: string;
  readonly name: string;
  readonly type: string;
  readonly data: Readonly<Record<string, Buffer>>;
  readonly labels?: Readonly<Record<string, string>>;
  readonly annotations?: Readonly<Record<string, string>>;
  readonly ownerReferences?: readonly V1OwnerReference[];
}

export interface ApplyOptions {
  /** Take over a Secret of that name without the managed-by label. */
  readonly adopt?: boolean;
  /** Key of the data HMAC (see {@link loadHmacKey}). */
  readonly hmacKey: Buffer;
  /** Who writes, for the API's managedFields. @default 'phasekit' */
  readonly fieldManager?: string;
}

export interface ApplyResult {
  readonly action: 'created' | 'updated' | 'unchanged';
  readonly uid: string;
  readonly resourceVersion: string;
  /** The data HMAC now on the Secret. */
  readonly hmac: string;
}

/** HMAC-SHA256 of the Secret's type and data, keys sorted and every part length-prefixed; hex. */
export function dataHmac(key: Buffer, type: string, data: Readonly<Record<string, Buffer>>): string {
  const mac = createHmac('sha256', key);
  const part = (bytes: Buffer) => {
    const length = Buffer.alloc(4);
    length.writeUInt32BE(bytes.length);
    mac.update(length).update(bytes);
  };
  part(Buffer.from(type));
  for (const name of Object.keys(data).sort()) {
    part(Buffer.from(name));
    part(data[name] ?? Buffer.alloc(0));
  }
  return mac.digest('hex');
}

function sameData(
  current: Record<string, string> | undefined,
  desired: Readonly<Record<string, Buffer>>,
): boolean {
  const have = current ?? {};
  const names = Object.keys(desired);
  if (Object.keys(have).length !== names.length) return false;
  for (const name of names) {
    const encoded = have[name];
    const want = desired[name];
    if (encoded === undefined || want === undefined) return false;
    const bytes = Buffer.from(encoded, 'base64');
    if (bytes.length !== want.length || !timingSafeEqual(bytes, want)) return false;
  }
  return true;
}

function includes(have: Record<string, string> | undefined, want: Readonly<Record<string, string>>): boolean {
  return Object.entries(want).every(([k, v]) => have?.[k] === v);
}

function encode(data: Readonly<Record<string, Buffer>>): Record<string, string> {
  return Object.fromEntries(Object.entries(data).map(([k, v]) => [k, v.toString('base64')]));
}

/**
 * True when `secret` is managed and holds the type and data whose HMAC is `hmac`, with that HMAC in its annotation:
 * as {@link applySecret} leaves it.
 */
export function holdsData(secret: V1Secret, hmac: string, key: Buffer): boolean {
  if (!isManaged(secret) || secret.metadata?.annotations?.[DATA_HMAC_ANNOTATION] !== hmac) return false;
  const data = Object.fromEntries(
    Object.entries(secret.data ?? {}).map(([name, encoded]) => [name, Buffer.from(encoded, 'base64')]),
  );
  return dataHmac(key, secret.type ?? 'Opaque', data) === hmac;
}

/** True when the Secret carries phasekit's managed-by label. */
export function isManaged(secret: V1Secret): boolean {
  return secret.metadata?.labels?.[MANAGED_BY_LABEL] === MANAGED_BY;
}

/**
 * Creates or updates one managed Secret, writing only when its type, data, our labels and annotations or the owner
 * references differ. An update carries the resourceVersion read, and a conflict re-reads and tries again.
 *
 * @throws {AgentError} `KUBE_UNMANAGED` for an existing Secret without phasekit's label (unless `adopt`),
 *   `KUBE_REJECTED` for a type change (immutable) or a write the API refuses, `KUBE_FORBIDDEN`, `KUBE_UNAVAILABLE`.
 */
export async function applySecret(
  core: CoreV1Api,
  desired: DesiredSecret,
  options: ApplyOptions,
): Promise<ApplyResult> {
  const { namespace, name } = desired;
  const where = `Secret ${namespace}/${name}`;
  const hmac = dataHmac(options.hmacKey, desired.type, desired.data);
  const labels = { ...desired.labels, [MANAGED_BY_LABEL]: MANAGED_BY };
  const annotations = { ...desired.annotations, [DATA_HMAC_ANNOTATION]: hmac };
  const fieldManager = options.fieldManager ?? 'phasekit';
  for (let attempt = 0; ; attempt += 1) {
    let current: V1Secret | undefined;
    try {
      current = await core.readNamespacedSecret({ name, namespace });
    } catch (error) {
      if (statusOf(error) !== 404) throw kubeError(error, `cannot read ${where}`);
    }
    if (current === undefined) {
      try {
        const created = await core.createNamespacedSecret({
          namespace,
          fieldManager,
          body: {
            apiVersion: 'v1',
            kind: 'Secret',
            metadata: {
              name,
              namespace,
              labels,
              annotations,
              ...(desired.ownerReferences?.length ? { ownerReferences: [...desired.ownerReferences] } : {}),
            },
            type: desired.type,
            data: encode(desired.data),
          },
        });
        return {
          action: 'created',
          uid: created.metadata?.uid ?? '',
          resourceVersion: created.metadata?.resourceVersion ?? '',
          hmac,
        };
      } catch (error) {
        // Someone created it between our read and our create: read again.
        if (statusOf(error) === 409 && attempt < 5) continue;
        throw kubeError(error, `cannot create ${where}`);
      }
    }
    if (!isManaged(current) && options.adopt !== true) {
      throw new AgentError(
        AgentErrorCode.KUBE_UNMANAGED,
        `${where} exists and is not managed by phasekit (no ${MANAGED_BY_LABEL}=${MANAGED_BY} label); ` +
          'it is left untouched (pass --adopt to take it over)',
      );
    }
    const currentType = current.type ?? 'Opaque';
    if (currentType !== desired.type) {
      throw new AgentError(
        AgentErrorCode.KUBE_REJECTED,
        `${where} has type ${currentType} and ${desired.type} is wanted; a Secret's type cannot change, so delete it to let phasekit recreate it`,
      );
    }
    const owners = current.metadata?.ownerReferences ?? [];
    const missingOwners = (desired.ownerReferences ?? []).filter((o) => !owners.some((x) => x.uid === o.uid));
    const unchanged =
      sameData(current.data, desired.data) &&
      includes(current.metadata?.labels, labels) &&
      includes(current.metadata?.annotations, annotations) &&
      missingOwners.length === 0;
    if (unchanged) {
      return {
        action: 'unchanged',
        uid: current.metadata?.uid ?? '',
        resourceVersion: current.metadata?.resourceVersion ?? '',
        hmac,
      };
    }
    const body: V1Secret = {
      ...current,
      metadata: {
        ...current.metadata,
        name,
        namespace,
        labels: { ...current.metadata?.labels, ...labels },
        annotations: { ...current.metadata?.annotations, ...annotations },
        ownerReferences: [...owners, ...missingOwners],
      },
      data: encode(desired.data),
    };
    delete body.stringData;
    try {
      const updated = await core.replaceNamespacedSecret({ name, namespace, body, fieldManager });
      return {
        action: 'updated',
        uid: updated.metadata?.uid ?? '',
        resourceVersion: updated.metadata?.resourceVersion ?? '',
        hmac,
      };
    } catch (error) {
      // 409: it changed since we read it. 404: deleted in between. Both: start over.
      const status = statusOf(error);
      if ((status === 409 || status === 404) && attempt < 5) continue;
      throw kubeError(error, `cannot update ${where}`);
    }
  }
}

/**
 * The HMAC key kept in the Secret {@link HMAC_KEY_SECRET} of `namespace`: read, or made (32 random bytes) when
 * missing. A stable key keeps the data HMACs, and so the restart annotations, the same across restarts.
 */
export async function loadHmacKey(core: CoreV1Api, namespace: string): Promise<Buffer> {
  for (let attempt = 0; ; attempt += 1) {
    try {
      const secret = await core.readNamespacedSecret({ name: HMAC_KEY_SECRET, namespace });
      const key = secret.data?.['key'];
      if (key === undefined || Buffer.from(key, 'base64').length < 32) {
        throw new AgentError(
          AgentErrorCode.KUBE_REJECTED,
          `Secret ${namespace}/${HMAC_KEY_SECRET} has no 32-byte key; delete it to let phasekit make a new one`,
        );
      }
      return Buffer.from(key, 'base64');
    } catch (error) {
      if (statusOf(error) !== 404)
        throw kubeError(error, `cannot read Secret ${namespace}/${HMAC_KEY_SECRET}`);
    }
    try {
      const key = randomBytes(32);
      await core.createNamespacedSecret({
        namespace,
        body: {
          apiVersion: 'v1',
          kind: 'Secret',
          metadata: { name: HMAC_KEY_SECRET, namespace, labels: { [MANAGED_BY_LABEL]: MANAGED_BY } },
          type: 'Opaque',
          data: { key: key.toString('base64') },
        },
      });
      return key;
    } catch (error) {
      if (statusOf(error) === 409 && attempt < 3) continue;
      throw kubeError(error, `cannot create Secret ${namespace}/${HMAC_KEY_SECRET}`);
    }
  }
}
