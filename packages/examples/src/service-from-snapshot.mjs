// An example service that reads its configuration from the phasekit sidecar's snapshot directory and
// hot-reloads it, without restarting, whenever the sidecar flips in a new version.
//
//   node service-from-snapshot.mjs /secrets [port]
//
// It never logs a secret value: it reports key names and versions, and exposes only a non-secret flag.
import { createServer } from 'node:http';
import { readSecretsDir, watchSecretsDir } from '@phasekit/sdk';

const dir = process.argv[2] ?? '/secrets';
const port = Number(process.argv[3] ?? 0);

let config = await readSecretsDir(dir);
console.log(JSON.stringify({ event: 'loaded', version: config.version, keys: config.keys })); // -- allowed: example output

const controller = new AbortController();
const watcher = watchSecretsDir(dir, { signal: controller.signal });
watcher.on('change', (change) => {
  // Names only: which keys were added, removed or changed, and the new version.
  console.log(JSON.stringify({ event: 'reloaded', ...change })); // -- allowed: example output
});
watcher.on(
  'error',
  (error) => console.error(JSON.stringify({ event: 'error', code: error.code, message: error.message })), // -- allowed: example output
);
(async () => {
  for await (const snapshot of watcher) config = snapshot;
})();

const server = createServer((req, res) => {
  // FEATURE_FLAG is a non-secret setting, so this example can show it changing live.
  res.setHeader('content-type', 'application/json');
  res.end(
    JSON.stringify({
      pid: process.pid,
      version: config.version,
      featureFlag: config.secrets.FEATURE_FLAG ?? null,
    }),
  );
});
server.listen(port, '127.0.0.1', () => {
  console.log(JSON.stringify({ event: 'listening', url: `http://127.0.0.1:${server.address().port}` })); // -- allowed: example output
});

for (const signal of ['SIGTERM', 'SIGINT']) {
  process.on(signal, () => {
    controller.abort();
    server.close();
  });
}
