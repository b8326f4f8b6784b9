// Issue item 6: the "app" a sidecar notifies. Writes its pid to argv[2]; prints `HUP <n> <epoch ms>` for each
// SIGHUP, and `ready` once set up. Runs until killed.
const { writeFileSync } = require('node:fs');
let n = 0;
process.on('SIGHUP', () => {
  n++;
  process.stdout.write(`HUP ${n} ${Date.now()}\n`);
});
writeFileSync(process.argv[2], String(process.pid));
process.stdout.write('ready\n');
setInterval(() => {}, 1000);
