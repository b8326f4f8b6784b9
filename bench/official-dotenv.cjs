// Issue item 4: the smallest useful script with the official client: fetch one environment and write a dotenv
// file. `node official-dotenv.cjs HOST APP_ID ENV OUT_FILE`, token from PHASE_SERVICE_TOKEN.
// (No escaping beyond JSON-style quoting; phasekit's dotenv output escapes properly, which costs it a little.)
const { writeFileSync, renameSync } = require('node:fs');
const Phase = require('@phase.dev/phase-node');

const [host, appId, envName, out] = process.argv.slice(2);
// The official client never settles on HTTP errors: bound it.
setTimeout(() => {
  process.stderr.write('official client timed out\n');
  process.exit(5);
}, 60_000).unref();

(async () => {
  const phase = new Phase(process.env.PHASE_SERVICE_TOKEN, host);
  await phase.init();
  const secrets = await phase.get({ appId, envName });
  const text = secrets.map((s) => `${s.key}=${JSON.stringify(s.value)}\n`).join('');
  writeFileSync(`${out}.tmp`, text, { mode: 0o400 });
  renameSync(`${out}.tmp`, out);
})().catch((error) => {
  process.stderr.write(`${error}\n`);
  process.exit(1);
});
