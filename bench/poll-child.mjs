// Issue item 3: a poll that finds no change. `node poll-child.mjs HOST APP_ID ENV POLLS [WARMUP] [AGE]`.
// client.watch() with a 200 ms interval (no jitter). After the first snapshot and a few warm-up polls, for each of
// POLLS no-change polls we record, between consecutive 'polled' events (one full poll cycle: timer, GET tokens,
// parse, compare stamps):
//   cpuUs: process.cpuUsage() delta (user + system), i.e. all CPU the process spent in that cycle
//   wallMs: wall time of the cycle (mostly the sleep)
// plus the emulator's request log (requests per poll) and client.decryptions (decryptions per poll).
import { connectEmulator } from '@phasekit/emulator';
import { PhaseClient } from '@phasekit/sdk';

const [host, appId, envName, pollsArg, warmupArg, ageArg] = process.argv.slice(2);
const polls = Number(pollsArg ?? 30);
// Steady state, which is where a watch spends its life: the first read's garbage collected, its helper thread
// stopped (2 s idle), the JIT settled.
const WARMUP = Number(warmupArg ?? 50);
// AGE > 0: first age the process by that many no-change polls of another watch on the same client at 10 ms, the
// state a watch reaches after AGE polls at any interval (V8 optimises the code a poll runs as it keeps running it;
// the CPU of a poll falls for the first few thousand). Then the measured watch starts as above.
const AGE = Number(ageArg ?? 0);
const control = connectEmulator(host);
const client = new PhaseClient({ token: process.env.PHASE_SERVICE_TOKEN, host });
// The control client (Node's fetch, loaded on first use) is warmed up before the watch starts: its first call,
// made inside the measured window, used to add its loading and compiling to the CPU of the polls.
await control.clearRequests();
if (AGE > 0) {
  const ageing = client.watch({ appId, env: envName }, { intervalMs: 10, jitter: 0 });
  let n = 0;
  await new Promise((resolve) => ageing.on('polled', () => ++n >= AGE && resolve()));
  await ageing.close();
}
const watch = client.watch({ appId, env: envName }, { intervalMs: 200, jitter: 0 });

const cycles = [];
let seen = 0;
let last;
let decryptionsAtStart = 0;
let changedPolls = 0;
const done = new Promise((resolve) => {
  watch.on('polled', ({ changed }) => {
    seen++;
    const now = { cpu: process.cpuUsage(), t: performance.now() };
    if (seen === WARMUP + 1) {
      decryptionsAtStart = client.decryptions;
      // Only the measured polls are counted from here on (the control call itself is not logged).
      void control.clearRequests();
    } else if (seen > WARMUP + 1) {
      if (changed) changedPolls++;
      const d = process.cpuUsage(last.cpu);
      cycles.push({ cpuUs: d.user + d.system, wallMs: now.t - last.t });
      if (cycles.length >= polls) resolve();
    }
    last = { cpu: process.cpuUsage(), t: performance.now() };
  });
  watch.on('error', (e) => {
    process.stderr.write(`watch error ${e.code}\n`);
  });
});
await done;
await watch.close();
const requests = await control.requests();
const byRoute = {};
for (const r of requests) byRoute[r.route] = (byRoute[r.route] ?? 0) + 1;
process.stdout.write(
  `${JSON.stringify({
    polls: cycles.length,
    changedPolls,
    cpuUs: cycles.map((c) => c.cpuUs),
    wallMs: cycles.map((c) => c.wallMs),
    requests: requests.length,
    byRoute,
    decryptions: client.decryptions - decryptionsAtStart,
    initialDecryptions: decryptionsAtStart,
  })}\n`,
);
await client.close();
process.exit(0);
