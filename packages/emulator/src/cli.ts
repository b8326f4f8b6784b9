#!/usr/bin/env node
/**
 * `phasekit-emulator --seed FILE [--port N] [--host H] [--strict] [--tls [--ca-file FILE]]`
 *
 * The first stdout line is one JSON object `{url, tokens, apps}` (and `caFile` with `--tls`); every later line is one JSON request log entry
 * (method, path, status, ms). This is the only module that touches argv, signals and the exit code.
 */
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { DEMO_SEED, loadSeed } from './seed.js';
import { startEmulator } from './server.js';
import type { Seed } from './types.js';

const USAGE = `Usage: phasekit-emulator [--seed FILE] [--port N] [--host H] [--strict] [--tls [--ca-file FILE]]

  --seed FILE   YAML or JSON seed (default: a small built-in demo seed)
  --port N      port to listen on, 0 picks a free one (default: 0)
  --host H      interface to bind (default: 127.0.0.1)
  --strict      reject keyDigests that are not blake2b(UPPER(key), salt) and undecryptable ciphertexts
  --tls         serve HTTPS with a generated self-signed certificate (needs the openssl command); clients trust
                it with NODE_EXTRA_CA_CERTS=<caFile>
  --ca-file F   where to write that certificate (default: a new file in the temp directory)
  --help        show this help
`;

function out(line: string): void {
  process.stdout.write(`${line}\n`);
}

function usageError(message: string): number {
  process.stderr.write(`phasekit-emulator: ${message}\n\n${USAGE}`);
  return 2;
}

async function main(argv: string[]): Promise<number> {
  let values: {
    seed?: string;
    port?: string;
    host?: string;
    strict?: boolean;
    tls?: boolean;
    'ca-file'?: string;
    help?: boolean;
  };
  try {
    ({ values } = parseArgs({
      args: argv,
      strict: true,
      allowPositionals: false,
      options: {
        seed: { type: 'string' },
        port: { type: 'string' },
        host: { type: 'string' },
        strict: { type: 'boolean' },
        tls: { type: 'boolean' },
        'ca-file': { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
    }));
  } catch (error) {
    return usageError(error instanceof Error ? error.message : String(error));
  }
  if (values.help) {
    process.stdout.write(USAGE);
    return 0;
  }
  const port = values.port === undefined ? 0 : Number(values.port);
  if (!/^\d+$/.test(values.port ?? '0') || !Number.isInteger(port) || port > 65_535) {
    return usageError(`--port must be an integer from 0 to 65535, got "${values.port ?? ''}"`);
  }
  if (values.host === '') return usageError('--host must not be empty');
  if (values['ca-file'] !== undefined && !values.tls) return usageError('--ca-file needs --tls');

  let seed: Seed = DEMO_SEED;
  if (values.seed !== undefined) {
    try {
      seed = await loadSeed(values.seed);
    } catch (error) {
      return usageError(error instanceof Error ? error.message : String(error));
    }
  }

  // Listen before the first line goes out: a supervisor may signal as soon as it reads it.
  const stopped = new Promise<void>((resolve) => {
    process.once('SIGTERM', () => resolve());
    process.once('SIGINT', () => resolve());
  });
  const emulator = await startEmulator({
    seed,
    port,
    strict: values.strict ?? false,
    tls: values.tls ?? false,
    ...(values.host === undefined ? {} : { host: values.host }),
    // Only method, path, status and duration: never a header, a token or a body.
    logger: { info: (entry) => out(JSON.stringify(entry)) },
  });
  let caFile: string | undefined;
  if (emulator.ca !== undefined) {
    caFile = values['ca-file'] ?? join(await mkdtemp(join(tmpdir(), 'phasekit-emulator-')), 'ca.pem');
    await writeFile(caFile, emulator.ca);
  }
  out(
    JSON.stringify({
      url: emulator.url,
      tokens: emulator.tokens,
      apps: emulator.apps,
      ...(caFile ? { caFile } : {}),
    }),
  );

  await stopped;
  await emulator.close();
  return 0;
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (error: unknown) => {
    process.stderr.write(`phasekit-emulator: ${error instanceof Error ? error.message : String(error)}\n`);
    process.exitCode = 1;
  },
);
