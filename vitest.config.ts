import { defineConfig } from 'vitest/config';

export default defineConfig({
  resolve: {
    // Tests import workspace packages from source (see each package's exports map).
    conditions: ['@phasekit/source'],
  },
  ssr: { resolve: { conditions: ['@phasekit/source'] } },
  test: {
    include: ['packages/*/src/**/*.test.ts', 'packages/*/test/**/*.test.ts'],
    testTimeout: 30_000,
    hookTimeout: 60_000,
    pool: 'forks',
    // Builds the Kubernetes binaries (testbin/build.sh) once when missing (10 to 15 minutes cold on 2 cores).
    globalSetup: ['packages/agent/test/k8s/global-setup.ts'],
    // Flaky tests hide real bugs: never retry.
    retry: 0,
  },
});
