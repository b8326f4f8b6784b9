// Starts bench/emulator-child.mjs and connects to its control API.
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { connectEmulator } from '@phasekit/emulator';

const CHILD = fileURLToPath(new URL('../emulator-child.mjs', import.meta.url));

/** Starts the emulator process; resolves with {url, tokens, apps, control, pid, envId(name), close()}. */
export async function startEmulatorProcess(spec) {
  const child = spawn(process.execPath, [CHILD, JSON.stringify(spec)], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const info = await new Promise((resolve, reject) => {
    let buf = '';
    const timer = setTimeout(() => reject(new Error('emulator did not start within 120 s')), 120_000);
    child.stdout.setEncoding('utf8');
    child.stdout.on('data', (chunk) => {
      buf += chunk;
      const nl = buf.indexOf('\n');
      if (nl >= 0) {
        clearTimeout(timer);
        resolve(JSON.parse(buf.slice(0, nl)));
      }
    });
    child.on('exit', (code) => reject(new Error(`emulator exited early (${code})`)));
  });
  const control = connectEmulator(info.url);
  const app = info.apps[0];
  return {
    ...info,
    pid: child.pid,
    control,
    appId: app.id,
    appName: app.name,
    envId: (name) => app.environments.find((e) => e.name === name).id,
    close: () =>
      new Promise((resolve) => {
        if (child.exitCode !== null) return resolve();
        child.once('exit', () => resolve());
        child.kill('SIGTERM');
        setTimeout(() => child.kill('SIGKILL'), 5000).unref();
      }),
  };
}
