// Runs the phasekit emulator in its own process (so its CPU is not charged to the contenders), seeded with the
// bench's environments. Prints one JSON line {url, tokens, apps} on stdout; driven through the emulator's control
// API (connectEmulator) by bench/run.mjs. Stops on SIGTERM.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { startEmulator } from '@phasekit/emulator';

const spec = JSON.parse(process.argv[2] ?? '{}');

function secretsFor(env) {
  const out = [];
  for (let i = 0; i < env.count; i++) {
    const n = String(i).padStart(4, '0');
    const secret = {
      key: `${env.prefix ?? 'BENCH'}_KEY_${n}`,
      // ~48-character values, like a typical URL or API key.
      value: `value-${n}-${'x'.repeat(24)}-${(i * 2654435761) % 1000003}`,
      path: '/',
    };
    if (env.comments === 'half' && i % 2 === 0) secret.comment = `comment for secret ${n}`;
    out.push(secret);
  }
  return out;
}

const seed = {
  apps: [
    {
      name: spec.app ?? 'bench',
      environments: (spec.envs ?? []).map((env) => ({ name: env.name, secrets: secretsFor(env) })),
    },
  ],
};

// HTTPS with the bench's certificate (spec.tls: the directory holding ca.pem and key.pem).
const tls = spec.tls
  ? {
      cert: readFileSync(join(spec.tls, 'ca.pem'), 'utf8'),
      key: readFileSync(join(spec.tls, 'key.pem'), 'utf8'),
    }
  : false;
const emu = await startEmulator({ seed, port: 0, tls });
process.stdout.write(`${JSON.stringify({ url: emu.url, tokens: emu.tokens, apps: emu.apps })}\n`);
process.on('SIGTERM', () => {
  void emu.close().then(() => process.exit(0));
});
