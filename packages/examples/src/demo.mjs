// `pnpm demo`: phasekit end to end on one machine, no Phase account needed.
//  1. starts the emulator (a local Phase API with the real end-to-end crypto),
//  2. starts `phasekit sidecar`, which writes the secrets to a snapshot directory,
//  3. starts an example service that reads that directory with readSecretsDir/watchSecretsDir,
//  4. changes a secret in "Phase" and shows the service pick it up live, without a restart.
import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { startEmulator } from '@phasekit/emulator';

const root = fileURLToPath(new URL('../../..', import.meta.url));
const cli = join(root, 'packages/agent/dist/cli/phasekit.js');
const say = (text) => console.log(`\x1b[1m▸ ${text}\x1b[0m`); // -- allowed: example output

const seed = {
  apps: [
    {
      name: 'shop',
      environments: [
        {
          name: 'Production',
          secrets: [
            {
              key: 'DATABASE_URL',
              value: 'postgres://shop:s3cret@db:5432/shop',
              comment: 'primary database',
            },
            { key: 'STRIPE_KEY', value: 'sk_live_demo_only' },
            { key: 'FEATURE_FLAG', value: 'off' },
          ],
        },
      ],
    },
  ],
};

function lines(child, onLine) {
  createInterface({ input: child.stdout }).on('line', onLine);
}

function waitFor(child, predicate, what, ms = 15_000) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`timed out waiting for ${what}`)), ms);
    lines(child, (line) => {
      let event;
      try {
        event = JSON.parse(line);
      } catch {
        return;
      }
      if (predicate(event)) {
        clearTimeout(timer);
        resolve(event);
      }
    });
  });
}

const out = await mkdtemp(join(tmpdir(), 'phasekit-demo-'));
const emulator = await startEmulator({ seed });
say(`emulator listening at ${emulator.url} (app "shop", environment "Production", 3 secrets)`);

const sidecar = spawn(
  process.execPath,
  [
    cli,
    'sidecar',
    '--host',
    emulator.url,
    '--app',
    'shop',
    '--env',
    'Production',
    '--out',
    out,
    '--format',
    'files,dotenv,json',
    '--interval',
    '500ms',
    '--health-addr',
    '127.0.0.1:0',
  ],
  {
    env: { ...process.env, PHASE_SERVICE_TOKEN: emulator.tokens.serviceAccount },
    stdio: ['ignore', 'ignore', 'pipe'],
  },
);
let healthUrl;
const ready = new Promise((resolve, reject) => {
  const timer = setTimeout(() => reject(new Error('the sidecar did not become ready')), 15_000);
  createInterface({ input: sidecar.stderr }).on('line', (line) => {
    const entry = JSON.parse(line);
    if (entry.msg === 'health server listening') healthUrl = entry.url;
    if (entry.msg === 'ready') {
      clearTimeout(timer);
      resolve();
    }
  });
});
await ready;
say(`phasekit sidecar wrote the snapshot to ${out}`);
const layout = `  ${out}/..data -> one immutable version; DATABASE_URL, STRIPE_KEY, FEATURE_FLAG, .env, secrets.json link into it`;
console.log(layout); // -- allowed: example output
console.log(`  health: ${healthUrl}/readyz -> ${(await fetch(`${healthUrl}/readyz`)).status}`); // -- allowed: example output

const service = spawn(
  process.execPath,
  [join(root, 'packages/examples/src/service-from-snapshot.mjs'), out],
  {
    stdio: ['ignore', 'pipe', 'inherit'],
  },
);
const listening = await waitFor(service, (e) => e.event === 'listening', 'the example service');
const before = await (await fetch(listening.url)).json();
say(
  `example service (pid ${before.pid}) reads the snapshot: FEATURE_FLAG=${before.featureFlag}, version ${before.version}`,
);

say('changing FEATURE_FLAG to "on" in Phase (the emulator)...');
const reloaded = waitFor(service, (e) => e.event === 'reloaded', 'the service to reload');
emulator.setSecret({ app: 'shop', env: 'Production', key: 'FEATURE_FLAG', value: 'on' });
const change = await reloaded;
const after = await (await fetch(listening.url)).json();
say(
  `the sidecar flipped in version ${change.version}; the service reloaded (changed: ${change.changed.join(', ')})`,
);
say(
  `example service (pid ${after.pid}, same process) now reads FEATURE_FLAG=${after.featureFlag}, without a restart`,
);

service.kill('SIGTERM');
sidecar.kill('SIGTERM');
await new Promise((resolve) => sidecar.once('exit', resolve));
await emulator.close();
await rm(out, { recursive: true, force: true });
say('done: the sidecar stopped cleanly. Next: docs/quickstart.md');
if (after.featureFlag !== 'on' || after.pid !== before.pid) process.exitCode = 1;
