// Issue item 1, in-process variant: `node inproc-child.mjs HOST APP_ID ENV ROUNDS`. In one process, alternating
// in a random order each round, a NEW client per sample:
//   phasekit: new PhaseClient + getSecrets({comments: true}) (+ close)
//   official: new Phase + init() + get()
// Module loading, JIT warm-up and the crypto backend's one-time initialisation are shared across samples here
// (that is what "in-process" means); the fresh-process numbers come from cold-get-child.mjs.
import { createRequire } from 'node:module';
import { shuffled } from './lib/stats.mjs';

const [host, appId, envName, roundsArg] = process.argv.slice(2);
const rounds = Number(roundsArg ?? 15);
const token = process.env.PHASE_SERVICE_TOKEN;
const require = createRequire(import.meta.url);
const Phase = require('@phase.dev/phase-node');
const { PhaseClient, cryptoBackend } = await import('@phasekit/sdk');

function deadline(promise, what) {
  let timer;
  return Promise.race([
    promise,
    new Promise((_, reject) => {
      timer = setTimeout(
        () => reject(new Error(`${what} timed out (the official client hangs on HTTP errors)`)),
        60_000,
      );
    }),
  ]).finally(() => clearTimeout(timer));
}

const contenders = {
  async phasekit() {
    const client = new PhaseClient({ token, host });
    const secrets = await client.getSecrets({ appId, env: envName, comments: true });
    await client.close();
    return { count: secrets.length, decryptions: client.decryptions };
  },
  async official() {
    const phase = new Phase(token, host);
    await deadline(phase.init(), 'official init');
    const secrets = await deadline(phase.get({ appId, envName }), 'official get');
    return { count: secrets.length };
  },
};

const ms = { phasekit: [], official: [] };
const info = {};
for (let r = -2; r < rounds; r++) {
  for (const name of shuffled(Object.keys(contenders))) {
    // One contender's garbage is not collected in the other's time (run with --expose-gc).
    globalThis.gc?.();
    const t0 = performance.now();
    const result = await contenders[name]();
    const elapsed = performance.now() - t0;
    if (r >= 0) ms[name].push(elapsed); // the first two rounds are warm-up
    info[name] = result;
  }
}
process.stdout.write(`${JSON.stringify({ ms, info, backend: cryptoBackend() })}\n`);
process.exit(0);
