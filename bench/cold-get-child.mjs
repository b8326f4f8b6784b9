// One cold read in a fresh process: `node cold-get-child.mjs CONTENDER HOST APP_ID ENV`. Token from
// PHASE_SERVICE_TOKEN. Prints one JSON line: {importMs, opMs, count, comments, decryptions, backend}.
//   importMs: process start -> client library loaded (performance.now() is relative to process start)
//   opMs:     new client -> decrypted secrets in hand (phasekit: new PhaseClient + getSecrets; official: new Phase +
//             init() + get())
import { createRequire } from 'node:module';

const [contender, host, appId, envName] = process.argv.slice(2);
const token = process.env.PHASE_SERVICE_TOKEN;
const require = createRequire(import.meta.url);
// The official client hangs forever on HTTP errors: never let a sample run away.
setTimeout(() => {
  process.stderr.write(`${contender}: timed out\n`);
  process.exit(3);
}, 60_000).unref();

if (contender === 'official') {
  const Phase = require('@phase.dev/phase-node');
  const importMs = performance.now();
  const t0 = performance.now();
  const phase = new Phase(token, host);
  await phase.init();
  const secrets = await phase.get({ appId, envName });
  const opMs = performance.now() - t0;
  const comments = secrets.filter((s) => s.comment).length;
  process.stdout.write(
    `${JSON.stringify({ importMs, opMs, count: secrets.length, comments, backend: 'libsodium-wrappers' })}\n`,
  );
} else {
  const { PhaseClient, cryptoBackend } = await import('@phasekit/sdk');
  const importMs = performance.now();
  const t0 = performance.now();
  const client = new PhaseClient({ token, host });
  const secrets = await client.getSecrets({
    appId,
    env: envName,
    comments: contender !== 'phasekit-nocomments',
  });
  const opMs = performance.now() - t0;
  const comments = secrets.filter((s) => s.comment).length;
  const out = {
    importMs,
    opMs,
    count: secrets.length,
    comments,
    decryptions: client.decryptions,
    backend: cryptoBackend(),
  };
  await client.close();
  process.stdout.write(`${JSON.stringify(out)}\n`);
}
process.exit(0);
