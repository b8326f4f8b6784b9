// The README's first command runs the demo; these tests keep it and the SDK example working. They run the
// examples as a user would, against the built packages (the root `pnpm test` builds first).
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';

const run = promisify(execFile);
const example = (name: string) => fileURLToPath(new URL(`../src/${name}`, import.meta.url));

describe('examples', () => {
  it('the demo shows a service picking up a changed secret without a restart', async () => {
    const { stdout } = await run(process.execPath, [example('demo.mjs')], { timeout: 60_000 });
    expect(stdout).toContain('now reads FEATURE_FLAG=on, without a restart');
    expect(stdout).toContain('the sidecar stopped cleanly');
  }, 90_000);

  it('the SDK example reads, watches and writes secrets against the embedded emulator', async () => {
    const { stdout } = await run(process.execPath, [example('sdk-basic.mjs')], {
      timeout: 30_000,
      env: { ...process.env, PHASE_SERVICE_TOKEN: '' },
    });
    expect(stdout).toContain('read 3 secrets from demo/Development');
    expect(stdout).toContain('added [EXAMPLE_ADDED]');
    expect(stdout).toContain('removed [EXAMPLE_ADDED]');
  }, 60_000);
});
