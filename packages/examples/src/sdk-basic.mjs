// The SDK in a Node service: read, watch and write secrets. Runs against the emulator by default:
//
//   node sdk-basic.mjs                       (starts an embedded emulator)
//   PHASE_SERVICE_TOKEN=... PHASE_HOST=... node sdk-basic.mjs shop Production
import { startEmulator, DEMO_SEED } from '@phasekit/emulator';
import { PhaseClient } from '@phasekit/sdk';

const emulator = process.env.PHASE_SERVICE_TOKEN ? undefined : await startEmulator({ seed: DEMO_SEED });
const phase = emulator
  ? new PhaseClient({ token: emulator.tokens.serviceAccount, host: emulator.url })
  : new PhaseClient(); // PHASE_SERVICE_TOKEN and PHASE_HOST from the environment
const app = process.argv[2] ?? emulator?.apps[0]?.name;
const env = process.argv[3] ?? 'Development';

const secrets = await phase.getSecrets({ app, env });
console.log(`read ${secrets.length} secrets from ${app}/${env}: ${secrets.map((s) => s.key).join(', ')}`); // -- allowed: example output

const watch = phase.watch({ app, env }, { intervalMs: 500 });
await watch[Symbol.asyncIterator]().next(); // the first snapshot: changes are reported from here on
watch.on(
  'change',
  (c) => console.log(`changed: added [${c.added}] removed [${c.removed}] changed [${c.changed}]`), // -- allowed: example output
);
await phase.createSecrets({
  app,
  env,
  secrets: [{ key: 'example_added', value: 'hello', comment: 'by sdk-basic' }],
});
await new Promise((resolve) => watch.once('change', resolve));
await phase.deleteSecrets({ app, env, keys: ['EXAMPLE_ADDED'] });
await new Promise((resolve) => watch.once('change', resolve));

await watch.close();
await phase.close();
await emulator?.close();
