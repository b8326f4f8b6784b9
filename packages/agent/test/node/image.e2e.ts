// The image `pnpm image` builds (the one every pod test runs): reproducible, laid out as deploy/Containerfile says,
// and decrypting with sodium-native's native backend inside a pod.
import { readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import type { V1Pod } from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildImage, containerfileSpec } from '../../scripts/build-image.mjs';
import { tarEntries, type TarEntry } from '../../scripts/oci.mjs';
import {
  apply,
  eventually,
  getJson,
  IMAGE,
  kubectl,
  phaseObjects,
  startPhase,
  testNamespace,
  type Phase,
} from './pods.js';

const ARCHIVE = process.env['PHASEKIT_IMAGE_ARCHIVE']!;
const DIGEST = process.env['PHASEKIT_IMAGE_DIGEST']!;

interface Image {
  index: { manifests: { digest: string; annotations: Record<string, string> }[] };
  config: {
    architecture: string;
    config: {
      User: string;
      WorkingDir: string;
      Entrypoint: string[];
      Cmd: string[];
      Labels: Record<string, string>;
      Env: string[];
    };
  };
  files: Map<string, TarEntry>;
}

function open(archive: string): Image {
  const outer = new Map([...tarEntries(readFileSync(archive))].map((e) => [e.name, e]));
  const blob = (digest: string) => outer.get(`blobs/sha256/${digest.slice('sha256:'.length)}`)!.data;
  const index = JSON.parse(outer.get('index.json')!.data.toString()) as Image['index'];
  const manifest = JSON.parse(blob(index.manifests[0]!.digest).toString()) as {
    config: { digest: string };
    layers: { digest: string }[];
  };
  expect(manifest.layers).toHaveLength(1);
  const layer = gunzipSync(blob(manifest.layers[0]!.digest));
  return {
    index,
    config: JSON.parse(blob(manifest.config.digest).toString()) as Image['config'],
    files: new Map([...tarEntries(layer)].map((e) => [e.name.replace(/\/$/, ''), e])),
  };
}

let image: Image;
beforeAll(() => {
  expect(ARCHIVE, 'run through pnpm test:e2e, which builds the image').toBeTruthy();
  image = open(ARCHIVE);
});

describe('the phasekit image (pnpm image)', () => {
  it('is reproducible: a second build of the same inputs has the same digest', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'phasekit-image-'));
    try {
      const again = await buildImage({ out: join(dir, 'again.oci.tar') });
      expect(again.digest).toBe(DIGEST);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('has the layout and config of deploy/Containerfile', () => {
    const spec = containerfileSpec();
    const { config } = image.config;
    expect(config.User).toBe(spec.user);
    expect(config.WorkingDir).toBe(spec.workdir);
    expect(config.Entrypoint).toEqual(spec.entrypoint);
    expect(config.Cmd).toEqual(spec.cmd);
    for (const [key, value] of Object.entries(spec.labels)) {
      if (key !== 'org.opencontainers.image.version') expect(config.Labels[key]).toBe(value);
    }
    expect(config.Labels['org.opencontainers.image.version']).toMatch(/^\d+\.\d+\.\d+/);
    expect(config.Labels['org.opencontainers.image.revision']).toMatch(/^[0-9a-f]{40}$/);
    // What the Containerfile copies, where it copies it.
    expect(image.files.get(spec.entrypoint[0]!.slice(1))?.mode).toBe(0o755);
    expect(image.files.has(spec.entrypoint.at(-1)!.slice(1))).toBe(true);
    expect(image.files.has('app/node_modules/sodium-native/package.json')).toBe(true);
    // distroless's parts: CA certificates, the nonroot user, /tmp; no shell.
    expect(image.files.get('etc/ssl/certs/ca-certificates.crt')?.data.toString()).toContain(
      'BEGIN CERTIFICATE',
    );
    const [uid, gid] = spec.user.split(':');
    expect(image.files.get('etc/passwd')?.data.toString()).toContain(`nonroot:x:${uid}:${gid}:`);
    expect(image.files.get('tmp')?.mode).toBe(0o1777);
    expect(image.files.has('bin/sh')).toBe(false);
    // Every entry is root-owned with a fixed time except the nonroot home.
    for (const [name, entry] of image.files) {
      if (name !== 'home/nonroot') expect([entry.uid, entry.gid], name).toEqual([0, 0]);
    }
    const names = image.index.manifests.map((m) => m.annotations['io.containerd.image.name']);
    expect(names).toContain('localhost/phasekit:dev');
  });
});

describe('the image in a pod', () => {
  let phase: Phase;
  let ns: Awaited<ReturnType<typeof testNamespace>>;
  beforeAll(async () => {
    phase = await startPhase({
      apps: [{ name: 'A', environments: [{ name: 'E', secrets: [{ key: 'K', value: 'image-value' }] }] }],
    });
    ns = await testNamespace('image');
    await apply(ns.name, phaseObjects(phase, phase.emu.tokens.serviceAccount));
  });
  afterAll(async () => {
    await ns?.drop();
    await phase?.emu.close();
  });

  it('decrypts with the native backend, as its debug log says', async () => {
    await apply(ns.name, [
      {
        apiVersion: 'v1',
        kind: 'Pod',
        metadata: { name: 'once' },
        spec: {
          restartPolicy: 'Never',
          automountServiceAccountToken: false,
          securityContext: { runAsNonRoot: true, seccompProfile: { type: 'RuntimeDefault' } },
          volumes: [
            { name: 'out', emptyDir: { medium: 'Memory' } },
            { name: 'phase-ca', configMap: { name: 'phase-ca' } },
          ],
          containers: [
            {
              name: 'phasekit',
              image: IMAGE,
              imagePullPolicy: 'Never',
              args: ['once', '--app=A', '--env=E', '--out=/out', '--log-level=debug'],
              env: [
                { name: 'PHASE_HOST', value: phase.url },
                { name: 'NODE_EXTRA_CA_CERTS', value: '/etc/phase-ca/ca.pem' },
                {
                  name: 'PHASE_SERVICE_TOKEN',
                  valueFrom: { secretKeyRef: { name: 'phase-token', key: 'token' } },
                },
              ],
              volumeMounts: [
                { name: 'out', mountPath: '/out' },
                { name: 'phase-ca', mountPath: '/etc/phase-ca', readOnly: true },
              ],
              securityContext: {
                allowPrivilegeEscalation: false,
                readOnlyRootFilesystem: true,
                capabilities: { drop: ['ALL'] },
              },
            },
          ],
        },
      },
    ]);
    const pod = await eventually(async () => {
      const p = await getJson<V1Pod>(['pod', 'once', '-n', ns.name]);
      return p.status?.phase === 'Succeeded' || p.status?.phase === 'Failed' ? p : undefined;
    }, 'the one-shot pod to finish');
    const logs = await kubectl(['logs', '-n', ns.name, 'once']);
    expect(pod.status?.phase, logs).toBe('Succeeded');
    const backend = logs
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => JSON.parse(l) as { msg: string; backend?: string })
      .find((l) => l.msg === 'crypto backend in use');
    expect(backend?.backend).toBe('native');
  });
});
