// Item 3 reference: the CPU of one bare HTTP GET of the tokens endpoint every 200 ms with undici (the SDK's own
// copy), measured like poll-child.mjs (process.cpuUsage() delta between consecutive completions).
// `node http-baseline-child.mjs HOST POLLS [WARMUP] [AGE]`, token from PHASE_SERVICE_TOKEN; AGE GETs 10 ms apart first
// (as poll-child.mjs ages its client).
import { createRequire } from 'node:module';
import { setTimeout as sleep } from 'node:timers/promises';

const [host, pollsArg, warmupArg, ageArg] = process.argv.slice(2);
const polls = Number(pollsArg ?? 40);
const warmup = Number(warmupArg ?? 50);
const require = createRequire(new URL('../packages/sdk/package.json', import.meta.url));
const { Agent, request } = require('undici');
const token = process.env.PHASE_SERVICE_TOKEN.split(':');
const authorization = `Bearer ${token[0] === 'pss_user' ? 'User' : 'ServiceAccount'} ${token[2]}`;
const dispatcher = new Agent({ keepAliveTimeout: 30_000 });
for (let i = 0; i < Number(ageArg ?? 0); i++) {
  const res = await request(`${host}/service/secrets/tokens/`, {
    method: 'GET',
    headers: { authorization },
    dispatcher,
  });
  await res.body.json();
  await sleep(10);
}
const cpu = [];
let last;
for (let i = 0; i < polls + warmup; i++) {
  const res = await request(`${host}/service/secrets/tokens/`, {
    method: 'GET',
    headers: { authorization },
    dispatcher,
  });
  await res.body.json();
  if (i >= warmup) {
    const d = process.cpuUsage(last);
    cpu.push(d.user + d.system);
  }
  await sleep(200);
  last = process.cpuUsage();
}
// The cycle measured here is request + sleep, the same shape as a watch cycle.
process.stdout.write(`${JSON.stringify({ cpuUs: cpu })}\n`);
await dispatcher.close();
