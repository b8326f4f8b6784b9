// `phasekit operator`: PhaseSecrets reconciled into managed Secrets, as reconcile(key) over one deduplicating work
// queue fed by two informers (PhaseSecrets, and the Secrets phasekit manages, by label). Phase is asked once per
// token and interval however many PhaseSecrets share the token, and secrets are fetched and decrypted only when
// the environment changed, the spec changed, or a managed Secret drifted.
import { createHash, createHmac } from 'node:crypto';
import { isIP } from 'node:net';
import * as k8s from '@kubernetes/client-node';
import { PhaseClient, isPhaseError, type AppInfo, type PhaseClientOptions } from '@phasekit/sdk';
import { AgentError, AgentErrorCode, isAgentError } from '../errors.js';
import type { Logger } from '../logger.js';
import type { Metrics } from '../metrics.js';
import { toEntries } from '../sync.js';
import { kubeError, statusOf, type Kube } from './kube.js';
import { MANAGED_BY, MANAGED_BY_LABEL, applySecret, dataHmac, holdsData } from './managed-secret.js';
import {
  DEFAULT_INTERVAL_S,
  DELETION_POLICY_ANNOTATION,
  GROUP,
  KIND,
  KOPF_FINALIZER,
  PLURAL,
  REDEPLOY_ANNOTATION,
  VERSION,
  matchApp,
  matchEnv,
  matchesTag,
  parseSpec,
  type Match,
  type PhaseSecretObject,
  type PhaseSecretSpec,
} from './phasesecret.js';
import { WorkQueue } from './queue.js';
import { DataError, buildSecretData } from './transform.js';

/** On a managed Secret: the PhaseSecret (`namespace.name`) it belongs to. */
export const OWNER_LABEL = 'secrets.phasekit.dev/phasesecret';
/** On a restarted workload's pod template: an HMAC of the managed Secrets it uses. */
export const RESTART_ANNOTATION = 'secrets.phasekit.dev/restarted-for';
const COMPONENT = 'phasekit-operator';
const MERGE_PATCH = k8s.setHeaderOptions('Content-Type', k8s.PatchStrategy.MergePatch);

export interface OperatorOptions {
  readonly kube: Kube;
  readonly logger: Logger;
  /** The key of the data HMACs (see loadHmacKey). */
  readonly hmacKey: Buffer;
  /** Watch this namespace only; undefined means all. */
  readonly namespace?: string | undefined;
  /** Namespaces a PhaseSecret may use for its token or Secrets besides its own. */
  readonly allowNamespaces?: readonly string[];
  /** Deadline of one Phase sync, retries included. @default 60000 @unit ms */
  readonly timeoutMs?: number;
  /** PhaseSecrets reconciled at once. @default 8 */
  readonly concurrency?: number;
  /** Allow `http://` phaseHost values that are not loopback. @default false */
  readonly insecureHttp?: boolean;
  /** Extra options of every PhaseClient (a dispatcher, for tests and proxies). */
  readonly clientOptions?: Partial<PhaseClientOptions>;
  readonly metrics?: Metrics;
  /** Poll intervals are multiplied by this; tests shorten them. @default 1 */
  readonly intervalScale?: number;
}

/** The Ready condition as last written, to write status only when it changes. */
interface Condition {
  readonly status: 'True' | 'False';
  readonly reason: string;
  readonly message: string;
}

/** What the operator remembers of one PhaseSecret between reconciles. */
interface State {
  generation: number;
  /** The environment's updatedAt at the last full sync, and whether every managed Secret was written. */
  updatedAt: string | undefined;
  synced: boolean;
  /** Data HMAC per managed Secret (`namespace/name`). */
  hmacs: Map<string, string>;
  condition: Condition | undefined;
  lastSyncTime: string | undefined;
  warnedMatch: string | undefined;
}

/** One PhaseClient per token and host, and its last probe, shared by every PhaseSecret that uses them. */
interface TokenSession {
  readonly client: PhaseClient;
  probedAt: number;
  apps: AppInfo[] | undefined;
  inflight: Promise<AppInfo[]> | undefined;
  users: Set<string>;
}

/** Failure of one reconcile step with a condition reason. */
class ReconcileError extends Error {
  constructor(
    readonly reason: string,
    message: string,
    /** Retry sooner than the poll interval (transient failures). */
    readonly retry: 'interval' | 'backoff' | 'never' = 'interval',
  ) {
    super(message);
  }
}

function isLoopback(host: string): boolean {
  const name = host.replace(/^\[|\]$/g, '');
  return name === 'localhost' || name === '::1' || (isIP(name) === 4 && name.startsWith('127.'));
}

/** The PhaseSecret operator. `run()` until the signal aborts; `reconcile(key)` is one pass over one PhaseSecret. */
export class Operator {
  readonly #o: OperatorOptions;
  readonly #log: Logger;
  readonly #queue = new WorkQueue();
  readonly #states = new Map<string, State>();
  readonly #sessions = new Map<string, TokenSession>();
  /** Managed Secret (`namespace/name`) → the PhaseSecret key that writes it, and the data HMAC it is to hold. */
  readonly #owners = new Map<string, { owner: string; hmac: string }>();
  /** PhaseSecrets whose Secrets must be checked even when Phase and the spec did not change. */
  readonly #drift = new Set<string>();
  readonly #failures = new Map<string, number>();
  /**
   * Token Secret (`namespace/name`) → its token, when it was read (re-read once per poll interval) and the
   * PhaseSecrets that use it: a token stays in memory only while one does, as a session does.
   */
  readonly #tokens = new Map<string, { token: string; readAt: number; users: Set<string> }>();
  #informer: k8s.Informer<PhaseSecretObject> & k8s.ObjectCache<PhaseSecretObject>;
  #secretInformer: k8s.Informer<k8s.V1Secret> & k8s.ObjectCache<k8s.V1Secret>;
  #synced = false;

  constructor(options: OperatorOptions) {
    this.#o = options;
    this.#log = options.logger.child({ component: 'operator' });
    const { kube, namespace } = options;
    const psPath =
      namespace === undefined
        ? `/apis/${GROUP}/${VERSION}/${PLURAL}`
        : `/apis/${GROUP}/${VERSION}/namespaces/${namespace}/${PLURAL}`;
    this.#informer = k8s.makeInformer<PhaseSecretObject>(kube.config, psPath, () =>
      namespace === undefined
        ? kube.custom.listClusterCustomObject({ group: GROUP, version: VERSION, plural: PLURAL })
        : kube.custom.listNamespacedCustomObject({
            group: GROUP,
            version: VERSION,
            namespace,
            plural: PLURAL,
          }),
    );
    const selector = `${MANAGED_BY_LABEL}=${MANAGED_BY}`;
    const secretPath =
      namespace === undefined ? '/api/v1/secrets' : `/api/v1/namespaces/${namespace}/secrets`;
    this.#secretInformer = k8s.makeInformer<k8s.V1Secret>(
      kube.config,
      secretPath,
      () =>
        namespace === undefined
          ? kube.core.listSecretForAllNamespaces({ labelSelector: selector })
          : kube.core.listNamespacedSecret({ namespace, labelSelector: selector }),
      selector,
    );
  }

  /** True once both informers have listed (for /readyz). */
  get synced(): boolean {
    return this.#synced;
  }

  /** Starts the informers and workers; resolves after `signal` aborts and work in flight has finished. */
  async run(signal: AbortSignal): Promise<void> {
    const keyOf = (o: { metadata?: { namespace?: string; name?: string } }) =>
      `${o.metadata?.namespace ?? ''}/${o.metadata?.name ?? ''}`;
    const enqueue = (o: PhaseSecretObject) => this.#queue.add(keyOf(o));
    this.#informer.on('add', enqueue);
    this.#informer.on('update', enqueue);
    this.#informer.on('delete', enqueue);
    const onSecret = (s: k8s.V1Secret, deleted: boolean) => {
      const known = this.#owners.get(keyOf(s));
      if (known === undefined) return;
      // The informer's echo of our own write is not drift: the Secret holds what it is meant to.
      if (!deleted && holdsData(s, known.hmac, this.#o.hmacKey)) return;
      this.#drift.add(known.owner);
      this.#queue.add(known.owner);
    };
    this.#secretInformer.on('update', (s) => onSecret(s, false));
    this.#secretInformer.on('delete', (s) => onSecret(s, true));
    this.#restartOnError(this.#informer, 'PhaseSecrets', signal);
    this.#restartOnError(this.#secretInformer, 'managed Secrets', signal);

    await this.#startInformer(this.#informer, 'PhaseSecrets', signal);
    await this.#startInformer(this.#secretInformer, 'managed Secrets', signal);
    this.#synced = true;
    this.#log.info({ namespace: this.#o.namespace ?? '*' }, 'operator started');

    const workers = Array.from({ length: this.#o.concurrency ?? 8 }, () => this.#work());
    await new Promise<void>((resolve) => {
      if (signal.aborted) resolve();
      else signal.addEventListener('abort', () => resolve(), { once: true });
    });
    this.#queue.close();
    await Promise.all(workers);
    await Promise.allSettled([this.#informer.stop(), this.#secretInformer.stop()]);
    await Promise.allSettled([...this.#sessions.values()].map((s) => s.client.close()));
  }

  async #startInformer<T extends k8s.KubernetesObject>(
    informer: k8s.Informer<T>,
    what: string,
    signal: AbortSignal,
  ): Promise<void> {
    for (let attempt = 0; !signal.aborted; attempt += 1) {
      try {
        await informer.start();
        return;
      } catch (error) {
        // Right after the CRD is created the API can answer 429 or 404 for a moment: retry with back-off.
        this.#log.warn({ what, attempt }, `cannot list ${what} yet: ${kubeError(error, 'list').message}`);
        await new Promise((r) => setTimeout(r, Math.min(5_000, 250 * 2 ** attempt)));
      }
    }
  }

  #restartOnError<T extends k8s.KubernetesObject>(
    informer: k8s.Informer<T>,
    what: string,
    signal: AbortSignal,
  ): void {
    informer.on('error', (error: unknown) => {
      if (signal.aborted) return;
      this.#log.warn(
        { what },
        `the watch of ${what} ended (${kubeError(error, 'watch').message}); restarting`,
      );
      setTimeout(() => {
        if (!signal.aborted) void this.#startInformer(informer, what, signal);
      }, 1_000).unref();
    });
  }

  async #work(): Promise<void> {
    for (;;) {
      const key = await this.#queue.next();
      if (key === undefined) return;
      try {
        await this.reconcile(key);
      } catch (error) {
        this.#log.error({ key }, `reconcile failed: ${error instanceof Error ? error.message : 'unknown'}`);
        this.#queue.addAfter(key, 5_000);
      } finally {
        this.#queue.done(key);
      }
    }
  }

  /** One pass over the PhaseSecret `namespace/name`: every managed Secret brought in line, status and Events. */
  async reconcile(key: string): Promise<void> {
    const [namespace = '', name = ''] = key.split('/');
    const obj = this.#informer.get(name, namespace);
    if (obj === undefined || obj.metadata?.deletionTimestamp) {
      this.#forget(key);
      if (obj?.metadata?.finalizers?.includes(KOPF_FINALIZER)) await this.#dropKopfFinalizer(obj);
      return;
    }
    if (obj.metadata?.finalizers?.includes(KOPF_FINALIZER)) await this.#dropKopfFinalizer(obj);
    const generation = obj.metadata?.generation ?? 0;
    let state = this.#states.get(key);
    if (state === undefined) {
      state = {
        generation: -1,
        updatedAt: undefined,
        synced: false,
        hmacs: new Map(),
        condition: undefined,
        lastSyncTime: undefined,
        warnedMatch: undefined,
      };
      this.#states.set(key, state);
    }
    const start = performance.now();
    const parsed = parseSpec(obj.spec, namespace);
    const intervalMs =
      (parsed.ok ? parsed.spec.pollingIntervalS : DEFAULT_INTERVAL_S) * 1000 * (this.#o.intervalScale ?? 1);
    try {
      if (!parsed.ok) throw new ReconcileError('InvalidSpec', parsed.problems.join('; '), 'never');
      const spec = parsed.spec;
      this.#checkNamespaces(spec, namespace);
      const wrote = await this.#sync(key, obj, spec, state, generation, intervalMs);
      this.#failures.delete(key);
      this.#o.metrics?.syncResult(wrote ? 'success' : 'unchanged', (performance.now() - start) / 1000);
      this.#queue.addAfter(key, intervalMs * (1 + Math.random() * 0.1));
    } catch (error) {
      const failure = this.#describe(error);
      this.#o.metrics?.syncResult('failure', (performance.now() - start) / 1000);
      await this.#setCondition(obj, state, {
        status: 'False',
        reason: failure.reason,
        message: failure.message,
      });
      if (failure.retry === 'never') return;
      const failures = (this.#failures.get(key) ?? 0) + 1;
      this.#failures.set(key, failures);
      const backoff = Math.min(intervalMs, 1_000 * 2 ** Math.min(failures, 6));
      this.#queue.addAfter(key, failure.retry === 'backoff' ? backoff : intervalMs);
    }
  }

  /** Brings every managed Secret of one PhaseSecret in line; true when something was written. */
  async #sync(
    key: string,
    obj: PhaseSecretObject,
    spec: PhaseSecretSpec,
    state: State,
    generation: number,
    /** The poll interval on the operator's clock. */
    intervalMs: number,
  ): Promise<boolean> {
    const namespace = obj.metadata?.namespace ?? '';
    const url = this.#checkHost(spec.phaseHost);
    const token = await this.#readToken(key, spec, intervalMs);
    const session = this.#session(key, url, token);
    const apps = await this.#probe(session, intervalMs);
    const app = this.#chosen(
      matchApp(apps, spec),
      'app',
      spec.phaseAppId ?? spec.phaseApp ?? '',
      'AppNotFound',
    );
    const env = this.#chosen(
      matchEnv(app.value, spec),
      'environment',
      spec.phaseAppEnv,
      'EnvironmentNotFound',
    );
    const substring = [
      app.bySubstring ? `app ${JSON.stringify(spec.phaseApp)} matched ${app.value.name}` : undefined,
      env.bySubstring
        ? `environment ${JSON.stringify(spec.phaseAppEnv)} matched ${env.value.name}`
        : undefined,
    ].filter((x) => x !== undefined);
    if (substring.length > 0 && state.warnedMatch !== substring.join('; ')) {
      state.warnedMatch = substring.join('; ');
      await this.#event(
        obj,
        'Warning',
        'SubstringMatch',
        `${state.warnedMatch} by substring, as Phase's operator matches; name it exactly to silence this`,
      );
    }

    const drift = this.#drift.delete(key);
    const unchanged =
      state.synced && state.generation === generation && state.updatedAt === env.value.updatedAt && !drift;
    if (unchanged) return false;

    this.#log.debug({ key, drift }, 'fetching the secrets');
    const deadline = AbortSignal.timeout(this.#o.timeoutMs ?? 60_000);
    // The tag filter is applied here, after references resolved against the whole folder, with Phase's operator's
    // partial match (the SDK's `tags` option matches names exactly).
    // onSecretReferenceError: Fail (the default) makes an unresolvable `${...}` a ReferenceResolutionFailed error;
    // Warn syncs with it left literally, and says which keys hold one.
    const warn = spec.onSecretReferenceError === 'Warn';
    const fetched = await session.client.getSecrets(
      {
        appId: app.value.id,
        env: env.value.name,
        path: spec.phaseAppEnvPath,
        references: warn ? 'available' : 'resolve',
      },
      { signal: deadline },
    );
    const unresolved = warn ? fetched.filter((s) => /\$\{[^}]+\}/.test(s.value)).map((s) => s.key) : [];
    if (unresolved.length > 0) {
      await this.#event(
        obj,
        'Warning',
        'UnresolvedReferences',
        `synced with unresolved \${...} references left literally in ${unresolved.join(', ')} (onSecretReferenceError: Warn)`,
      );
    }
    const tag = spec.phaseAppEnvTag;
    const secrets = toEntries(tag === undefined ? fetched : fetched.filter((s) => matchesTag(s.tags, tag)));
    const owner: k8s.V1OwnerReference = {
      apiVersion: `${GROUP}/${VERSION}`,
      kind: KIND,
      name: obj.metadata?.name ?? '',
      uid: obj.metadata?.uid ?? '',
      controller: true,
      blockOwnerDeletion: false,
    };
    const deleteWithOwner = obj.metadata?.annotations?.[DELETION_POLICY_ANNOTATION] === 'delete';
    const changed: { namespace: string; name: string }[] = [];
    const problems: string[] = [];
    let wrote = false;
    for (const ref of spec.managedSecretReferences) {
      const where = `${ref.secretNamespace}/${ref.secretName}`;
      try {
        const { data, collisions } = buildSecretData(secrets, ref);
        for (const c of collisions) {
          this.#log.warn(
            { key, secret: where, output: c.output, winner: c.winner, loser: c.loser },
            'key collision',
          );
        }
        // Before the write, whose echo from the informer may come before its answer.
        this.#owners.set(where, { owner: key, hmac: dataHmac(this.#o.hmacKey, ref.secretType, data) });
        const result = await applySecret(
          this.#o.kube.core,
          {
            namespace: ref.secretNamespace,
            name: ref.secretName,
            type: ref.secretType,
            data,
            labels: { ...ref.labels, [OWNER_LABEL]: `${namespace}.${obj.metadata?.name ?? ''}`.slice(0, 63) },
            annotations: ref.annotations,
            ...(deleteWithOwner && ref.secretNamespace === namespace ? { ownerReferences: [owner] } : {}),
          },
          { hmacKey: this.#o.hmacKey, fieldManager: COMPONENT },
        );
        state.hmacs.set(where, result.hmac);
        if (result.action !== 'unchanged') {
          wrote = true;
          await this.#event(
            obj,
            'Normal',
            result.action === 'created' ? 'SecretCreated' : 'SecretUpdated',
            `${result.action} Secret ${where} (${Object.keys(data).length} keys)`,
          );
        }
        if (result.action === 'updated')
          changed.push({ namespace: ref.secretNamespace, name: ref.secretName });
      } catch (error) {
        if (error instanceof DataError) problems.push(`Secret ${where}: ${error.message}`);
        else if (isAgentError(error)) problems.push(error.message);
        else throw error;
      }
    }
    if (changed.length > 0) await this.#redeploy(obj, spec, state, changed);
    state.generation = generation;
    state.updatedAt = env.value.updatedAt;
    state.synced = problems.length === 0;
    state.lastSyncTime = new Date().toISOString();
    this.#o.metrics?.secrets(secrets.length);
    if (problems.length > 0) throw new ReconcileError('SecretSyncFailed', problems.join('; '), 'backoff');
    await this.#setCondition(obj, state, {
      status: 'True',
      reason: 'Synced',
      message: `${spec.managedSecretReferences.length} Secret(s) in sync with ${app.value.name}/${env.value.name}`,
    });
    return wrote;
  }

  #chosen<T>(
    match: Match<T>,
    what: string,
    wanted: string,
    reason: string,
  ): { value: T; bySubstring: boolean } {
    if (match.ok) return match;
    const message =
      match.reason === 'ambiguous'
        ? `${what} ${JSON.stringify(wanted)} is ambiguous: it matches ${match.candidates.join(', ')}; name one exactly`
        : `${what} ${JSON.stringify(wanted)} not found for this token`;
    throw new ReconcileError(reason, message);
  }

  #checkNamespaces(spec: PhaseSecretSpec, namespace: string): void {
    const allowed = (ns: string) => ns === namespace || (this.#o.allowNamespaces ?? []).includes(ns);
    if (!allowed(spec.tokenSecret.namespace)) {
      throw new ReconcileError(
        'NamespaceNotAllowed',
        `the token Secret is in namespace ${spec.tokenSecret.namespace}; a PhaseSecret may read its token only from its own namespace (${namespace}) unless the operator allows that namespace (--allow-namespaces)`,
        'never',
      );
    }
    for (const ref of spec.managedSecretReferences) {
      if (!allowed(ref.secretNamespace)) {
        throw new ReconcileError(
          'NamespaceNotAllowed',
          `Secret ${ref.secretNamespace}/${ref.secretName} is outside namespace ${namespace}; a PhaseSecret may write Secrets only into its own namespace unless the operator allows that namespace (--allow-namespaces)`,
          'never',
        );
      }
    }
  }

  #checkHost(host: string): URL {
    let url: URL;
    try {
      url = new URL(host);
    } catch {
      throw new ReconcileError('InvalidSpec', 'spec.phaseHost is not a valid URL', 'never');
    }
    if (
      url.protocol !== 'https:' &&
      !(url.protocol === 'http:' && (isLoopback(url.hostname) || this.#o.insecureHttp === true))
    ) {
      throw new ReconcileError(
        'InvalidSpec',
        'spec.phaseHost must be https:// (http:// only for loopback, or with --insecure-http)',
        'never',
      );
    }
    return url;
  }

  /**
   * The token of the spec's token Secret, read at most once per `maxAgeMs` (so a rotation lands within one poll).
   * A PhaseSecret that changed token Secret leaves its old one.
   */
  async #readToken(key: string, spec: PhaseSecretSpec, maxAgeMs: number): Promise<string> {
    const { name, namespace } = spec.tokenSecret;
    const id = `${namespace}/${name}`;
    this.#leaveTokens(key, id);
    const cached = this.#tokens.get(id);
    if (cached !== undefined && Date.now() - cached.readAt < maxAgeMs * 0.9) {
      cached.users.add(key);
      return cached.token;
    }
    let secret: k8s.V1Secret;
    try {
      secret = await this.#o.kube.core.readNamespacedSecret({ name, namespace });
    } catch (error) {
      if (statusOf(error) === 404) {
        throw new ReconcileError('TokenSecretMissing', `token Secret ${namespace}/${name} not found`);
      }
      throw new ReconcileError(
        'TokenSecretUnreadable',
        kubeError(error, `cannot read token Secret ${namespace}/${name}`).message,
        'backoff',
      );
    }
    const encoded = secret.data?.['token'];
    const token = encoded === undefined ? '' : Buffer.from(encoded, 'base64').toString('utf8').trim();
    if (token === '')
      throw new ReconcileError('TokenSecretMissing', `token Secret ${namespace}/${name} has no key "token"`);
    this.#tokens.set(id, { token, readAt: Date.now(), users: new Set([...(cached?.users ?? []), key]) });
    return token;
  }

  /** Takes `key` off every cached token but `keep`'s, dropping the tokens no PhaseSecret uses any more. */
  #leaveTokens(key: string, keep?: string): void {
    for (const [id, t] of this.#tokens) {
      if (id !== keep && t.users.delete(key) && t.users.size === 0) this.#tokens.delete(id);
    }
  }

  /** The shared session of a token and host; a PhaseSecret that changed token leaves its old one. */
  #session(key: string, url: URL, token: string): TokenSession {
    const id = createHash('sha256').update(url.origin).update('\0').update(token).digest('hex');
    for (const [other, s] of this.#sessions) {
      if (other !== id && s.users.delete(key) && s.users.size === 0) {
        this.#sessions.delete(other);
        void s.client.close();
      }
    }
    let session = this.#sessions.get(id);
    if (session === undefined) {
      let client: PhaseClient;
      try {
        client = new PhaseClient({
          token,
          host: url.origin,
          env: {},
          totalTimeoutMs: this.#o.timeoutMs ?? 60_000,
          logger: this.#log.child({ component: 'sdk' }),
          ...this.#o.clientOptions,
        });
      } catch (error) {
        throw new ReconcileError(
          'InvalidToken',
          isPhaseError(error) ? error.message : 'the token is not a Phase token',
          'never',
        );
      }
      session = { client, probedAt: 0, apps: undefined, inflight: undefined, users: new Set() };
      this.#sessions.set(id, session);
    }
    session.users.add(key);
    return session;
  }

  /**
   * The token's apps, probed at most once per `maxAgeMs` (90% of it, so a PhaseSecret's own poll finds it due).
   * When a probe shows an environment changed, every PhaseSecret of the token is queued at once: without that, one
   * that had just used the previous probe would wait almost two intervals to see the change.
   */
  async #probe(session: TokenSession, maxAgeMs: number): Promise<AppInfo[]> {
    if (session.apps !== undefined && Date.now() - session.probedAt < maxAgeMs * 0.9) return session.apps;
    session.inflight ??= session.client
      .apps({ signal: AbortSignal.timeout(this.#o.timeoutMs ?? 60_000) })
      .then((apps) => {
        const before = session.apps;
        session.apps = apps;
        session.probedAt = Date.now();
        if (before !== undefined && stamp(before) !== stamp(apps)) {
          for (const key of session.users) this.#queue.add(key);
        }
        return apps;
      })
      .finally(() => {
        session.inflight = undefined;
      });
    return session.inflight;
  }

  /**
   * Restarts the Deployments, StatefulSets and DaemonSets of the PhaseSecret's namespace that carry the redeploy
   * annotation and use a changed Secret, by writing an HMAC of the Secrets they use into their pod template: the
   * same Secrets give the same value, so a repeated pass restarts nothing.
   */
  async #redeploy(
    obj: PhaseSecretObject,
    spec: PhaseSecretSpec,
    state: State,
    changed: readonly { namespace: string; name: string }[],
  ): Promise<void> {
    const namespace = obj.metadata?.namespace ?? '';
    const changedNames = new Set(changed.filter((c) => c.namespace === namespace).map((c) => c.name));
    if (changedNames.size === 0) return;
    const { apps } = this.#o.kube;
    const selector =
      spec.redeployLabelSelector === undefined ? {} : { labelSelector: spec.redeployLabelSelector };
    const kinds = [
      {
        kind: 'Deployment',
        list: () => apps.listNamespacedDeployment({ namespace, ...selector }),
        patch: (name: string, body: object) =>
          apps.patchNamespacedDeployment({ name, namespace, body }, MERGE_PATCH),
      },
      {
        kind: 'StatefulSet',
        list: () => apps.listNamespacedStatefulSet({ namespace, ...selector }),
        patch: (name: string, body: object) =>
          apps.patchNamespacedStatefulSet({ name, namespace, body }, MERGE_PATCH),
      },
      {
        kind: 'DaemonSet',
        list: () => apps.listNamespacedDaemonSet({ namespace, ...selector }),
        patch: (name: string, body: object) =>
          apps.patchNamespacedDaemonSet({ name, namespace, body }, MERGE_PATCH),
      },
    ];
    for (const { kind, list, patch } of kinds) {
      let items: { metadata?: k8s.V1ObjectMeta; spec?: { template?: k8s.V1PodTemplateSpec } }[];
      try {
        items = (await list()).items;
      } catch (error) {
        await this.#event(obj, 'Warning', 'RedeployFailed', kubeError(error, `cannot list ${kind}s`).message);
        continue;
      }
      for (const workload of items) {
        if (workload.metadata?.annotations?.[REDEPLOY_ANNOTATION] === undefined) continue;
        const used = secretsUsedBy(workload.spec?.template?.spec);
        if (![...used].some((n) => changedNames.has(n))) continue;
        const mac = createHmac('sha256', this.#o.hmacKey);
        for (const n of [...used].sort()) mac.update(`${n}=${state.hmacs.get(`${namespace}/${n}`) ?? ''}\n`);
        const value = mac.digest('hex').slice(0, 32);
        const wname = workload.metadata.name ?? '';
        if (workload.spec?.template?.metadata?.annotations?.[RESTART_ANNOTATION] === value) continue;
        try {
          await patch(wname, {
            spec: { template: { metadata: { annotations: { [RESTART_ANNOTATION]: value } } } },
          });
          await this.#event(
            obj,
            'Normal',
            'Redeployed',
            `restarted ${kind} ${namespace}/${wname}: a Secret it uses changed`,
          );
        } catch (error) {
          await this.#event(
            obj,
            'Warning',
            'RedeployFailed',
            kubeError(error, `cannot restart ${kind} ${namespace}/${wname}`).message,
          );
        }
      }
    }
  }

  /** Writes the Ready condition (and lastSyncTime, secretsHmac) when it changed, with an Event on a transition. */
  async #setCondition(obj: PhaseSecretObject, state: State, next: Condition): Promise<void> {
    const generation = obj.metadata?.generation ?? 0;
    const prev = state.condition;
    const current = obj.status as
      | {
          conditions?: {
            type?: string;
            status?: string;
            reason?: string;
            message?: string;
            observedGeneration?: number;
          }[];
          lastSyncTime?: string;
        }
      | undefined;
    const written = current?.conditions?.find((c) => c.type === 'Ready');
    const secretsHmac = this.#secretsHmac(state);
    const same =
      written?.status === next.status &&
      written.reason === next.reason &&
      written.message === next.message &&
      written.observedGeneration === generation &&
      (next.status === 'False' ||
        (current?.lastSyncTime === state.lastSyncTime &&
          (current as { secretsHmac?: string }).secretsHmac === secretsHmac));
    if (!same) {
      const now = new Date().toISOString();
      const transition =
        written?.status === next.status && written.reason === next.reason
          ? ((written as { lastTransitionTime?: string }).lastTransitionTime ?? now)
          : now;
      try {
        await this.#o.kube.custom.patchNamespacedCustomObjectStatus(
          {
            group: GROUP,
            version: VERSION,
            namespace: obj.metadata?.namespace ?? '',
            plural: PLURAL,
            name: obj.metadata?.name ?? '',
            body: {
              status: {
                conditions: [
                  { type: 'Ready', ...next, observedGeneration: generation, lastTransitionTime: transition },
                ],
                observedGeneration: generation,
                ...(state.lastSyncTime === undefined ? {} : { lastSyncTime: state.lastSyncTime }),
                ...(next.status === 'True' ? { secretsHmac } : {}),
              },
            },
          },
          MERGE_PATCH,
        );
      } catch (error) {
        if (statusOf(error) !== 404)
          this.#log.warn(
            { key: `${obj.metadata?.namespace}/${obj.metadata?.name}` },
            kubeError(error, 'cannot write status').message,
          );
      }
    }
    if (prev?.status !== next.status || prev.reason !== next.reason || prev.message !== next.message) {
      if (next.status === 'False') await this.#event(obj, 'Warning', next.reason, next.message);
      else if (prev !== undefined) await this.#event(obj, 'Normal', 'Synced', next.message);
    }
    state.condition = next;
  }

  /** An HMAC over the data HMACs of every managed Secret: changes exactly when some Secret's data changed. */
  #secretsHmac(state: State): string {
    const mac = createHmac('sha256', this.#o.hmacKey);
    for (const [where, h] of [...state.hmacs].sort(([a], [b]) => (a < b ? -1 : 1)))
      mac.update(`${where}=${h}\n`);
    return mac.digest('hex');
  }

  async #event(
    obj: PhaseSecretObject,
    type: 'Normal' | 'Warning',
    reason: string,
    message: string,
  ): Promise<void> {
    const namespace = obj.metadata?.namespace ?? '';
    const now = new Date();
    try {
      await this.#o.kube.core.createNamespacedEvent({
        namespace,
        body: {
          metadata: { generateName: `${obj.metadata?.name ?? 'phasesecret'}.`, namespace },
          involvedObject: {
            apiVersion: `${GROUP}/${VERSION}`,
            kind: KIND,
            name: obj.metadata?.name ?? '',
            namespace,
            uid: obj.metadata?.uid ?? '',
          },
          type,
          reason,
          message: message.slice(0, 1024),
          source: { component: COMPONENT },
          reportingComponent: COMPONENT,
          firstTimestamp: now,
          lastTimestamp: now,
          count: 1,
        },
      });
    } catch (error) {
      this.#log.debug({ reason }, kubeError(error, 'cannot record an Event').message);
    }
    const level = type === 'Warning' ? 'warn' : 'info';
    this.#log[level]({ key: `${namespace}/${obj.metadata?.name ?? ''}`, reason }, message);
  }

  async #dropKopfFinalizer(obj: PhaseSecretObject): Promise<void> {
    const finalizers = (obj.metadata?.finalizers ?? []).filter((f) => f !== KOPF_FINALIZER);
    try {
      await this.#o.kube.custom.patchNamespacedCustomObject(
        {
          group: GROUP,
          version: VERSION,
          namespace: obj.metadata?.namespace ?? '',
          plural: PLURAL,
          name: obj.metadata?.name ?? '',
          body: { metadata: { finalizers, resourceVersion: obj.metadata?.resourceVersion } },
        },
        MERGE_PATCH,
      );
    } catch (error) {
      this.#log.warn({}, kubeError(error, "cannot remove Phase's operator v1 finalizer").message);
    }
  }

  #forget(key: string): void {
    this.#states.delete(key);
    this.#failures.delete(key);
    this.#drift.delete(key);
    this.#queue.forget(key);
    for (const [secret, known] of this.#owners) if (known.owner === key) this.#owners.delete(secret);
    for (const [id, s] of this.#sessions) {
      if (s.users.delete(key) && s.users.size === 0) {
        this.#sessions.delete(id);
        void s.client.close();
      }
    }
    // A PhaseSecret created later reads the token Secret afresh.
    this.#leaveTokens(key);
  }

  #describe(error: unknown): { reason: string; message: string; retry: 'interval' | 'backoff' | 'never' } {
    if (error instanceof ReconcileError)
      return { reason: error.reason, message: error.message, retry: error.retry };
    if (isPhaseError(error)) {
      switch (error.code) {
        case 'NETWORK':
        case 'TIMEOUT':
        case 'RATE_LIMITED':
          return {
            reason: 'PhaseUnavailable',
            message: `${error.message}; the managed Secrets are left as they are`,
            retry: 'backoff',
          };
        case 'UNAUTHORIZED':
        case 'FORBIDDEN':
        case 'INVALID_TOKEN':
          return { reason: 'PhaseAuthFailed', message: error.message, retry: 'interval' };
        case 'DECRYPT':
          return { reason: 'DecryptFailed', message: error.message, retry: 'interval' };
        case 'REFERENCE':
          return { reason: 'ReferenceResolutionFailed', message: error.message, retry: 'interval' };
        case 'NOT_FOUND':
          return { reason: 'NotFound', message: error.message, retry: 'interval' };
        case 'CONFIG':
        case 'CONFLICT':
        case 'ABORTED':
          return { reason: 'FetchFailed', message: error.message, retry: 'backoff' };
      }
    }
    if (error instanceof AgentError) {
      return {
        reason: error.code === AgentErrorCode.KUBE_UNAVAILABLE ? 'KubernetesUnavailable' : 'SecretSyncFailed',
        message: error.message,
        retry: 'backoff',
      };
    }
    return {
      reason: 'InternalError',
      message: error instanceof Error ? error.message : 'unexpected failure',
      retry: 'backoff',
    };
  }
}

/** Every environment's id and updatedAt, as one string to compare probes by. */
function stamp(apps: readonly AppInfo[]): string {
  return apps.map((a) => a.environments.map((e) => `${e.id}@${e.updatedAt}`).join(',')).join(';');
}

/** Names of the Secrets a pod spec uses: envFrom, env valueFrom, volumes and projected volumes, init containers too. */
export function secretsUsedBy(pod: k8s.V1PodSpec | undefined): Set<string> {
  const names = new Set<string>();
  for (const c of [...(pod?.containers ?? []), ...(pod?.initContainers ?? [])]) {
    for (const from of c.envFrom ?? []) if (from.secretRef?.name) names.add(from.secretRef.name);
    for (const e of c.env ?? [])
      if (e.valueFrom?.secretKeyRef?.name) names.add(e.valueFrom.secretKeyRef.name);
  }
  for (const v of pod?.volumes ?? []) {
    if (v.secret?.secretName) names.add(v.secret.secretName);
    for (const source of v.projected?.sources ?? []) if (source.secret?.name) names.add(source.secret.name);
  }
  return names;
}
