import { defineConfig } from 'vitest/config';

// `pnpm test:e2e` (packages/agent/test/node/e2e.mjs): the pod tests, run inside the test node's network namespace.
export default defineConfig({
  resolve: { conditions: ['@phasekit/source'] },
  ssr: { resolve: { conditions: ['@phasekit/source'] } },
  test: {
    include: ['packages/*/test/node/**/*.e2e.ts'],
    testTimeout: 120_000,
    hookTimeout: 120_000,
    pool: 'forks',
    // One node with 2 cores: files one after another, so pod timings mean something.
    fileParallelism: false,
    retry: 0,
  },
});
