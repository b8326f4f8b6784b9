// Corporate networks reach Phase through a proxy: every command honours HTTPS_PROXY / HTTP_PROXY and NO_PROXY
// (undici's EnvHttpProxyAgent). A real proxy on loopback carries the built CLI's traffic to the emulator and
// records what it was asked to reach; with NO_PROXY naming the host, it sees nothing.
import { join } from 'node:path';
import { readFile, writeFile } from 'node:fs/promises';
import { startEmulator, type Emulator } from '@phasekit/emulator';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { killAll, runCli, spawnCli, waitFor } from './helpers/cli.js';
import { startProxy, type Proxy } from './helpers/proxy.js';
import { APP, CANARY, ENV, itLeaksNothing, startSeeded, tempDir, tokenNeedles } from './helpers/fixture.js';

let emu: Emulator;
let proxy: Proxy;
let work: Awaited<ReturnType<typeof tempDir>>;
let emulatorHost: string;
const needles: string[] = [];

beforeAll(async () => {
  emu = await startSeeded();
  proxy = await startProxy();
  work = await tempDir('proxy');
  emulatorHost = new URL(emu.url).host;
});
afterEach(async () => {
  proxy.targets.length = 0;
  await killAll();
});
afterAll(async () => {
  await proxy?.close();
  await emu?.close();
  await work?.remove();
});

const source = () => ['--host', emu.url, '--app', APP, '--env', ENV];
const viaProxy = () => ({ HTTP_PROXY: proxy.url, HTTPS_PROXY: proxy.url });

describe('through a proxy named by HTTP(S)_PROXY', () => {
  it('once reaches Phase through the proxy', async () => {
    const out = join(work.path, 'once');
    const result = await runCli(['once', ...source(), '--out', out], {
      token: emu.tokens.serviceAccount,
      env: viaProxy(),
    });
    expect(result.code, result.stderr).toBe(0);
    expect(await readFile(join(out, 'CANARY_SECRET'), 'utf8')).toBe(CANARY);
    expect(proxy.targets.length).toBeGreaterThan(0);
    expect(new Set(proxy.targets)).toEqual(new Set([emulatorHost]));
  });

  it('export reaches Phase through the proxy', async () => {
    const result = await runCli(['export', ...source(), '--format', 'json'], {
      token: emu.tokens.serviceAccount,
      env: viaProxy(),
      stdoutCarriesValues: true,
    });
    expect(result.code, result.stderr).toBe(0);
    expect(JSON.parse(result.stdout)).toMatchObject({ CANARY_SECRET: CANARY });
    expect(new Set(proxy.targets)).toEqual(new Set([emulatorHost]));
  });

  it('run reaches Phase through the proxy', async () => {
    const result = await runCli(
      ['run', ...source(), '--', process.execPath, '-e', 'process.exit(process.env.K00 ? 0 : 9)'],
      { token: emu.tokens.serviceAccount, env: viaProxy() },
    );
    expect(result.code, result.stderr).toBe(0);
    expect(new Set(proxy.targets)).toEqual(new Set([emulatorHost]));
  });

  it('sidecar reaches Phase through the proxy, for its first snapshot and its polls', async () => {
    const out = join(work.path, 'sidecar');
    const sidecar = spawnCli(['sidecar', ...source(), '--out', out, '--interval', '100ms'], {
      token: emu.tokens.serviceAccount,
      env: viaProxy(),
    });
    await waitFor(async () => (await readFile(join(out, 'K00'), 'utf8')).length > 0, 'the first snapshot');
    const before = proxy.targets.length;
    expect(before).toBeGreaterThan(0);
    // Polls keep one kept-alive tunnel or open new ones; either way nothing bypasses the proxy.
    await waitFor(() => emu.requests().length > 6, 'a few polls');
    await sidecar.stop();
    expect(new Set(proxy.targets)).toEqual(new Set([emulatorHost]));
  });

  it('an https:// Phase is reached through a CONNECT tunnel, trusting its CA by NODE_EXTRA_CA_CERTS', async () => {
    const tls = await startEmulator({
      seed: { apps: [{ name: APP, environments: [{ name: ENV, secrets: [{ key: 'K', value: CANARY }] }] }] },
      tls: true,
    });
    try {
      const ca = join(work.path, 'ca.pem');
      await writeFile(ca, tls.ca!);
      const out = join(work.path, 'tls');
      const result = await runCli(['once', '--host', tls.url, '--app', APP, '--env', ENV, '--out', out], {
        token: tls.tokens.serviceAccount,
        env: { ...viaProxy(), NODE_EXTRA_CA_CERTS: ca },
      });
      expect(result.code, result.stderr).toBe(0);
      expect(await readFile(join(out, 'K'), 'utf8')).toBe(CANARY);
      expect(new Set(proxy.targets)).toEqual(new Set([new URL(tls.url).host]));
      needles.push(...tokenNeedles(tls));
    } finally {
      await tls.close();
    }
  });

  it('NO_PROXY naming the host bypasses the proxy', async () => {
    const out = join(work.path, 'no-proxy');
    const result = await runCli(['once', ...source(), '--out', out], {
      token: emu.tokens.serviceAccount,
      env: { ...viaProxy(), NO_PROXY: '127.0.0.1' },
    });
    expect(result.code, result.stderr).toBe(0);
    expect(proxy.targets).toEqual([]);
  });
});

itLeaksNothing(() => [CANARY, ...tokenNeedles(emu), ...needles]);
