#!/usr/bin/env node
import { main } from './cli.js';

// Set the exit code rather than calling process.exit, so logs and stdout are flushed first.
main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (error: unknown) => {
    process.stderr.write(`phasekit: unexpected failure: ${error instanceof Error ? error.name : 'error'}\n`);
    process.exitCode = 1;
  },
);
