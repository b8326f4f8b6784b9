// Helpers for tests that run `phasekit sidecar` against the emulator.
import { spawn, type ChildProcess } from 'node:child_process';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Emulator } from '@phasekit/emulator';
import { spawnCli, waitFor, type CliProcess, type LogLine } from './cli.js';
import { APP, ENV } from './fixture.js';

/** `phasekit sidecar` for app shop / Production (or `options.env`) into `out`, polling every 100 ms. */
export function startSidecar(
  emu: Emulator,
  out: string,
  extra: readonly string[] = [],
  options: { env?: string; host?: string } = {},
): CliProcess {
  return spawnCli(
    [
      'sidecar',
      '--host',
      options.host ?? emu.url,
      '--app',
      APP,
      '--env',
      options.env ?? ENV,
      '--out',
      out,
      '--interval',
      '100ms',
      ...extra,
    ],
    { token: emu.tokens.serviceAccount },
  );
}

/** Probe requests (the tokens route) the emulator has answered or refused so far. */
export function probes(emu: Emulator): number {
  return emu.requests().filter((r) => r.route === 'tokens').length;
}

/** Waits until the emulator has seen `n` more probes: `n` polls of the sidecar have passed. */
export async function pollsPass(emu: Emulator, n: number, timeoutMs = 10_000): Promise<void> {
  const base = probes(emu);
  await waitFor(() => probes(emu) >= base + n, `${n} more polls`, timeoutMs);
}

/** A log line announcing a snapshot with a version above `after`. */
export function snapshotAbove(after: number): (line: LogLine) => boolean {
  return (line) =>
    (line.msg === 'snapshot updated' || line.msg === 'snapshot written') &&
    line.component === 'watcher' &&
    typeof line.version === 'number' &&
    line.version > after;
}

/** A process that writes its pid to `pidfile`, prints `HUP n` per SIGHUP, and runs until killed. */
export class SignalCounter {
  readonly child: ChildProcess;
  output = '';
  constructor(pidfile: string) {
    const script = `
      require('node:fs').writeFileSync(process.argv[1], String(process.pid));
      let n = 0;
      process.on('SIGHUP', () => { n++; process.stdout.write('HUP ' + n + '\\n'); });
      process.stdout.write('ready\\n');
      setInterval(() => {}, 1000);
    `;
    this.child = spawn(process.execPath, ['-e', script, pidfile], { stdio: ['ignore', 'pipe', 'inherit'] });
    this.child.stdout?.setEncoding('utf8').on('data', (chunk: string) => (this.output += chunk));
  }
  get hups(): number {
    return this.output.split('\n').filter((line) => line.startsWith('HUP ')).length;
  }
  ready(): Promise<void> {
    return waitFor(() => this.output.includes('ready\n'), 'the signalled app to start', 5_000).then(
      () => undefined,
    );
  }
  waitForHups(n: number, timeoutMs = 5_000): Promise<number> {
    return waitFor(
      () => (this.hups >= n ? this.hups : undefined),
      `${n} SIGHUP(s) (have ${this.hups})`,
      timeoutMs,
    );
  }
  stop(): void {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill('SIGKILL');
  }
}

/** An HTTP server on 127.0.0.1 that records every request body. */
export async function startHook(): Promise<{
  url: string;
  bodies: { method: string; body: string; type: string }[];
  close: () => Promise<void>;
}> {
  const bodies: { method: string; body: string; type: string }[] = [];
  const server: Server = createServer((req, res) => {
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (chunk: string) => (body += chunk));
    req.on('end', () => {
      bodies.push({ method: req.method ?? '', body, type: String(req.headers['content-type'] ?? '') });
      res.writeHead(200, { 'content-type': 'text/plain' }).end('ok');
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/hook`,
    bodies,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
