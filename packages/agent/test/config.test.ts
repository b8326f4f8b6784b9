import { readFileSync } from 'node:fs';
import { inspect } from 'node:util';
import { ErrorCode, PhaseError } from '@phasekit/sdk';
import { describe, expect, it } from 'vitest';
import { COMMANDS, SETTINGS, USAGE, wantsHelp } from '../src/config/index.js';
import { AgentError, exitCodeFor, isAgentError } from '../src/errors.js';
import { configFileNamed, loadConfig as loadCore } from '../src/config/index.js';
import type { Command, LoadConfigOptions } from '../src/config/index.js';
import { loadConfig } from '../src/load-config.js';
import {
  isLoopbackHost,
  parseDuration,
  parseFileMode,
  parseListenAddress,
  parseSignal,
  tryParseCommand,
} from '../src/parse.js';

const TOKEN = 'pss_service:v2:0123456789abcdef:fedcba9876543210:deadbeef';
const BASE_ENV = { PHASE_SERVICE_TOKEN: TOKEN, PHASE_APP: 'shop', PHASE_ENV: 'Production' };

function files(map: Record<string, string>): (path: string) => string {
  return (path) => {
    const content = map[path];
    if (content === undefined) {
      throw Object.assign(new Error(`ENOENT: no such file or directory, open '${path}'`), { code: 'ENOENT' });
    }
    return content;
  };
}

function load<C extends Command>(
  command: C,
  argv: readonly string[],
  extra: Partial<Omit<LoadConfigOptions<C>, 'command' | 'argv'>> = {},
) {
  return loadConfig({
    command,
    argv,
    env: extra.env ?? BASE_ENV,
    ...(extra.readFile ? { readFile: extra.readFile } : {}),
  });
}

function configError(fn: () => unknown): PhaseError {
  try {
    fn();
  } catch (error) {
    expect(error).toBeInstanceOf(PhaseError);
    expect((error as PhaseError).code).toBe(ErrorCode.CONFIG);
    return error as PhaseError;
  }
  throw new Error('expected a CONFIG error');
}

describe('loadConfig: defaults and shape', () => {
  it('builds a once config from env alone, with every default filled in', () => {
    const config = load('once', [], { env: { ...BASE_ENV, PHASE_OUT: '/secrets' } });
    expect(config).toEqual({
      command: 'once',
      auth: { source: 'env' },
      host: 'https://console.phase.dev',
      insecureHttp: false,
      timeoutMs: 60_000,
      allowEmpty: false,
      skipInvalidKeys: false,
      log: { level: 'info', format: 'json' },
      configFile: undefined,
      shrinkThreshold: 0.5,
      outputs: [
        {
          name: 'default',
          source: { app: 'shop', env: 'Production', path: '/', recursive: false },
          out: '/secrets',
          formats: ['files', 'dotenv'],
          fileMode: 0o400,
          uid: undefined,
          gid: undefined,
        },
      ],
    });
    expect(config.auth.token).toBe(TOKEN);
  });

  it('returns a deeply frozen object', () => {
    const config = load('sidecar', ['--out', '/s', '--notify-exec', 'true']);
    expect(Object.isFrozen(config)).toBe(true);
    expect(Object.isFrozen(config.outputs)).toBe(true);
    expect(Object.isFrozen(config.outputs[0]?.source)).toBe(true);
    expect(Object.isFrozen(config.notify?.exec)).toBe(true);
    expect(Object.isFrozen(config.auth)).toBe(true);
  });

  it('keeps the token out of JSON and inspect output', () => {
    const config = load('sidecar', ['--out', '/s']);
    expect(JSON.stringify(config)).not.toContain(TOKEN);
    expect(inspect(config, { depth: null })).not.toContain(TOKEN);
    expect(config.auth.token).toBe(TOKEN);
  });

  it('fills sidecar defaults: 30s interval, stale-after max(3 × interval, interval + timeout), 1s debounce', () => {
    const config = load('sidecar', ['--out', '/s', '--notify-pidfile', '/run/app.pid']);
    expect(config.intervalMs).toBe(30_000);
    expect(config.staleAfterMs).toBe(90_000);
    expect(config.healthAddr).toBeUndefined();
    expect(config.cleanup).toBe(false);
    expect(config.notify).toEqual({
      signal: 'SIGHUP',
      pidfile: '/run/app.pid',
      process: undefined,
      http: undefined,
      exec: undefined,
      onStart: false,
      debounceMs: 1000,
    });
    expect(load('sidecar', ['--out', '/s', '--interval', '1s']).staleAfterMs).toBe(61_000);
    expect(load('sidecar', ['--out', '/s', '--interval', '1m', '--timeout', '5s']).staleAfterMs).toBe(
      180_000,
    );
  });

  it('has no notify config without a target', () => {
    expect(load('sidecar', ['--out', '/s', '--notify-on-start']).notify).toBeUndefined();
  });

  it('treats empty and blank env vars as unset, and trims values', () => {
    const config = load('export', [], { env: { ...BASE_ENV, PHASE_HOST: '   ', PHASE_PATH: ' /backend ' } });
    expect(config.host).toBe('https://console.phase.dev');
    expect(config.source.path).toBe('/backend');
  });

  it('ignores env vars of settings the command does not use', () => {
    const config = load('export', [], {
      env: { ...BASE_ENV, PHASE_OUT: '/s', PHASE_POLL_INTERVAL: 'bogus' },
    });
    expect(config.format).toBe('dotenv');
  });
});

describe('loadConfig: argv', () => {
  it('accepts --x=value and --x value', () => {
    const a = load('export', ['--env=Staging', '--path', '/db']);
    expect(a.source).toMatchObject({ env: 'Staging', path: '/db' });
  });

  it('reads booleans as --x, --no-x and --x=false', () => {
    expect(load('export', ['--recursive']).source.recursive).toBe(true);
    expect(load('export', ['--recursive', '--no-recursive']).source.recursive).toBe(false);
    expect(load('export', ['--recursive=false']).source.recursive).toBe(false);
    const error = configError(() => load('export', ['--no-recursive=true']));
    expect(error.message).toContain('--no-recursive');
  });

  it('splits comma lists, accumulates repeated list flags, and lets the last scalar win', () => {
    const config = load('export', [
      '--tags',
      'db, cache',
      '--tags=web',
      '--keys',
      'A,B',
      '--env',
      'x',
      '--env',
      'y',
    ]);
    expect(config.source).toMatchObject({ tags: ['db', 'cache', 'web'], keys: ['A', 'B'], env: 'y' });
  });

  it('refuses unknown flags with a suggestion', () => {
    const error = configError(() => load('sidecar', ['--out', '/s', '--intervall', '5s']));
    expect(error.message).toContain('--intervall: unknown option; did you mean --interval?');
  });

  it('suggests --no-x for booleans', () => {
    const error = configError(() => load('export', ['--no-recursiv']));
    expect(error.message).toContain('did you mean --no-recursive?');
  });

  it('names flags that exist but belong to another command', () => {
    const error = configError(() => load('export', ['--out', '/s', '--notify-signal', 'HUP']));
    expect(error.message).toContain('--out: not used by phasekit export');
    expect(error.message).toContain('--notify-signal: not used by phasekit export');
    expect(error.message).not.toMatch(/argument \d/); // values of refused flags are skipped, not positional
  });

  it('refuses positional arguments without quoting them', () => {
    const error = configError(() => load('once', ['--out', '/s', 'stray-value']));
    expect(error.message).toContain('argument 3: unexpected; phasekit once takes no positional arguments');
    expect(error.message).not.toContain('stray-value');
  });

  it('reports a flag without its value, and reads the option after it as an option', () => {
    const error = configError(() => load('export', ['--app', '--env', 'x', '--path']));
    expect(error.message).toContain('--app: expected a value after --app');
    expect(error.message).toContain('--path: expected a value after --path');
    expect(error.message).not.toMatch(/argument \d/); // --env x was read as a flag, not as stray arguments
    expect(load('export', ['--env', '-']).source.env).toBe('-'); // a lone - is a value
  });

  it('refuses short options once per argument, naming only a lone letter', () => {
    expect(configError(() => load('export', ['-v'])).message).toContain(
      '-v: unknown option (phasekit has no short options)',
    );
    const error = configError(() => load('export', [`-${TOKEN}`]));
    expect(error.message).toContain('argument 1: unknown option (phasekit has no short options)');
    expect(error.message).not.toContain(TOKEN);
    expect(error.message.match(/argument 1/g)).toHaveLength(1);
  });

  it.each([['--token', TOKEN], [`--token=${TOKEN}`], ['--service-token', TOKEN]])(
    'refuses %s and never echoes the value',
    (...argv) => {
      const error = configError(() => load('export', argv));
      expect(error.message).toMatch(/--(service-)?token: a token is never accepted on the command line/);
      expect(error.message).toContain('argv is visible to other processes');
      expect(error.message).not.toContain(TOKEN);
      expect(error.message).not.toMatch(/argument \d/);
    },
  );

  it('does not echo a flag name that does not look like one', () => {
    const error = configError(() => load('export', [`--${TOKEN}`]));
    expect(error.message).not.toContain(TOKEN);
    expect(error.message).toContain('argument 1: unknown option');
  });

  it('collects every problem into one error', () => {
    const error = configError(() =>
      loadConfig({
        command: 'sidecar',
        argv: ['--interval', 'soon', '--file-mode', '999', '--log-level', 'verbose', '--bogus'],
        env: { PHASE_HOST: 'ftp://example.com' },
      }),
    );
    expect(error.message).toMatchInlineSnapshot(`
      "Invalid configuration for phasekit sidecar (9 problems):
        - argument 7: unknown option
        - token: required; set PHASE_SERVICE_TOKEN, or --token-file / PHASE_TOKEN_FILE (config file: tokenFile)
        - --host / PHASE_HOST (from PHASE_HOST): expected an http(s) URL such as https://console.phase.dev
        - --log-level / PHASE_LOG_LEVEL (from the command line): expected one of trace, debug, info, warn, error, fatal, silent
        - --app / PHASE_APP or --app-id / PHASE_APP_ID: required; name the app (config file: app or appId)
        - --env / PHASE_ENV: required; name the environment (config file: env)
        - --file-mode (from the command line): expected an octal file mode such as 0400, 0440 or 0o600
        - --out / PHASE_OUT: required; give the snapshot directory (config file: out)
        - --interval / PHASE_POLL_INTERVAL (from the command line): expected a duration such as 250ms, 10s, 5m or 1h (a bare number means seconds)"
    `);
  });
});

describe('loadConfig: precedence', () => {
  const yaml = 'host: https://file.example\nenv: FromFile\ninterval: 20s\n';
  const readFile = files({ '/etc/phasekit.yaml': yaml });

  it('uses flag over env over file over default', () => {
    const env = { ...BASE_ENV, PHASE_CONFIG: '/etc/phasekit.yaml', PHASE_HOST: 'https://env.example' };
    const fromFlag = load('sidecar', ['--out', '/s', '--host', 'https://flag.example'], { env, readFile });
    expect(fromFlag.host).toBe('https://flag.example');
    const fromEnv = load('sidecar', ['--out', '/s'], { env, readFile });
    expect(fromEnv.host).toBe('https://env.example');
    expect(fromEnv.outputs[0]?.source.env).toBe('Production'); // PHASE_ENV beats the file
    expect(fromEnv.intervalMs).toBe(20_000); // the file beats the default
    expect(fromEnv.configFile).toBe('/etc/phasekit.yaml');
    const fileEnv = { PHASE_SERVICE_TOKEN: TOKEN, PHASE_APP: 'shop', PHASE_CONFIG: '/etc/phasekit.yaml' };
    const fromFile = load('sidecar', ['--out', '/s'], { env: fileEnv, readFile });
    expect(fromFile.host).toBe('https://file.example');
    expect(fromFile.outputs[0]?.source.env).toBe('FromFile');
  });

  it('takes the app from the highest layer that names one, by name or id', () => {
    expect(load('export', ['--app-id', 'a1b2']).source).toMatchObject({ appId: 'a1b2' });
    expect(load('export', ['--app-id', 'a1b2']).source).not.toHaveProperty('app');
    const error = configError(() => load('export', ['--app', 'shop', '--app-id', 'a1b2']));
    expect(error.message).toContain('give the app by name or by id, not both');
  });

  it('--config flag beats PHASE_CONFIG', () => {
    const config = load('export', ['--config', '/b.yaml'], {
      env: { ...BASE_ENV, PHASE_CONFIG: '/a.yaml' },
      readFile: files({ '/b.yaml': 'path: /from-b\n' }),
    });
    expect(config.source.path).toBe('/from-b');
  });
});

describe('loadConfig: token', () => {
  const readFile = files({ '/run/token': `${TOKEN}\n`, '/run/empty': '\n', '/run/two': 'a\nb\n' });

  it('reads --token-file through readFile, keeps the path and hides the token', () => {
    const config = load('export', ['--token-file', '/run/token'], {
      env: { PHASE_APP: 'a', PHASE_ENV: 'e' },
      readFile,
    });
    expect(config.auth).toEqual({ source: 'file', tokenFile: '/run/token' });
    expect(config.auth.token).toBe(TOKEN);
  });

  it('prefers --token-file to PHASE_SERVICE_TOKEN, and PHASE_SERVICE_TOKEN to the file key tokenFile', () => {
    expect(load('export', ['--token-file', '/run/token'], { readFile }).auth.source).toBe('file');
    const fromYaml = files({ '/c.yaml': 'tokenFile: /run/token\n', '/run/token': 'other' });
    const config = load('export', ['--config', '/c.yaml'], { readFile: fromYaml });
    expect(config.auth.source).toBe('env');
    const noEnvToken = { PHASE_APP: 'a', PHASE_ENV: 'e' };
    expect(load('export', ['--config', '/c.yaml'], { env: noEnvToken, readFile: fromYaml }).auth.token).toBe(
      'other',
    );
  });

  it('refuses PHASE_SERVICE_TOKEN and PHASE_TOKEN_FILE together', () => {
    const error = configError(() =>
      load('export', [], { env: { ...BASE_ENV, PHASE_TOKEN_FILE: '/run/token' }, readFile }),
    );
    expect(error.message).toContain('PHASE_SERVICE_TOKEN and PHASE_TOKEN_FILE: set one of them, not both');
  });

  it.each([
    ['/run/missing', 'cannot read the token file (ENOENT)'],
    ['/run/empty', 'the token file is empty'],
    ['/run/two', 'expected one token on one line in the token file'],
  ])('reports a bad token file %s without its path or content', (path, text) => {
    const error = configError(() =>
      load('export', [], { env: { PHASE_APP: 'a', PHASE_ENV: 'e', PHASE_TOKEN_FILE: path }, readFile }),
    );
    expect(error.message).toContain(`--token-file / PHASE_TOKEN_FILE (from PHASE_TOKEN_FILE): ${text}`);
    expect(error.message).not.toContain(path);
    expect(error.cause).toBeUndefined();
  });
});

describe('loadConfig: host and URLs', () => {
  it.each([
    'http://127.0.0.1:8080',
    'http://localhost:8080',
    'http://[::1]:8080',
    'https://phase.example.com',
  ])('accepts %s', (host) => {
    expect(load('export', ['--host', host]).host).toBe(host);
  });

  it('refuses http:// to other hosts unless --insecure-http', () => {
    const error = configError(() => load('export', ['--host', 'http://phase.internal']));
    expect(error.message).toContain('http:// is allowed only for loopback hosts');
    expect(error.message).not.toContain('phase.internal');
    const config = load('export', ['--host', 'http://phase.internal/', '--insecure-http']);
    expect(config).toMatchObject({ host: 'http://phase.internal', insecureHttp: true });
  });

  it('refuses credentials in URLs', () => {
    const error = configError(() => load('export', ['--host', 'https://user:pw@phase.example.com']));
    expect(error.message).toContain('without user or password');
    expect(error.message).not.toContain('pw@');
  });

  it('applies the loopback rule to --notify-http', () => {
    expect(
      load('sidecar', ['--out', '/s', '--notify-http', 'http://127.0.0.1:3000/reload']).notify?.http,
    ).toBe('http://127.0.0.1:3000/reload');
    const error = configError(() =>
      load('sidecar', ['--out', '/s', '--notify-http', 'http://app:3000/reload']),
    );
    expect(error.message).toContain('--notify-http (from the command line): expected an https:// URL');
  });
});

describe('loadConfig: sidecar settings', () => {
  it('parses notify settings', () => {
    const config = load('sidecar', [
      '--out=/s',
      '--notify-signal=USR1',
      '--notify-process=nginx',
      '--notify-exec',
      `nginx -s 'reload now' "a \\"b\\""`,
      '--notify-on-start',
      '--notify-debounce=250ms',
    ]);
    expect(config.notify).toEqual({
      signal: 'SIGUSR1',
      pidfile: undefined,
      process: 'nginx',
      http: undefined,
      exec: ['nginx', '-s', 'reload now', 'a "b"'],
      onStart: true,
      debounceMs: 250,
    });
  });

  it('suggests the upper-case signal name', () => {
    const error = configError(() =>
      load('sidecar', ['--out', '/s', '--notify-signal', 'hup', '--notify-pidfile', '/p']),
    );
    expect(error.message).toContain('did you mean SIGHUP?');
  });

  it('needs a target for --notify-signal and only one of pidfile and process', () => {
    expect(configError(() => load('sidecar', ['--out', '/s', '--notify-signal', 'HUP'])).message).toContain(
      'needs --notify-pidfile or --notify-process',
    );
    const both = ['--out', '/s', '--notify-pidfile', '/p', '--notify-process', 'app'];
    expect(configError(() => load('sidecar', both)).message).toContain('choose one way to find the process');
  });

  it('refuses unquoted shell syntax in --notify-exec', () => {
    const error = configError(() =>
      load('sidecar', ['--out', '/s', '--notify-exec', 'kill -HUP $(cat /run/pid)']),
    );
    expect(error.message).toContain('runs without a shell');
  });

  it('parses --health-addr, --cleanup, --stale-after', () => {
    const config = load('sidecar', [
      '--out',
      '/s',
      '--health-addr',
      ':8080',
      '--cleanup',
      '--stale-after',
      '2m',
    ]);
    expect(config).toMatchObject({
      healthAddr: { host: '0.0.0.0', port: 8080 },
      cleanup: true,
      staleAfterMs: 120_000,
    });
  });

  it('requires --stale-after to exceed --interval, intervals of at least 10ms and timeouts of at least 100ms', () => {
    expect(
      configError(() => load('sidecar', ['--out', '/s', '--stale-after', '10s', '--interval', '10s']))
        .message,
    ).toContain('--stale-after (from the command line): expected a duration longer than --interval');
    expect(configError(() => load('sidecar', ['--out', '/s', '--interval', '5ms'])).message).toContain(
      'expected a duration of at least 10ms',
    );
    expect(load('sidecar', ['--out', '/s', '--interval', '10ms']).intervalMs).toBe(10);
    expect(configError(() => load('sidecar', ['--out', '/s', '--timeout', '50ms'])).message).toContain(
      'expected a duration of at least 100ms',
    );
  });

  it('parses file settings', () => {
    const config = load('once', [
      '--out',
      '/s',
      '--file-mode',
      '0o440',
      '--uid',
      '1000',
      '--gid=0',
      '--format',
      'json,files',
    ]);
    expect(config.outputs[0]).toMatchObject({
      fileMode: 0o440,
      uid: 1000,
      gid: 0,
      formats: ['json', 'files'],
    });
  });

  it('parses the shrink threshold as a fraction or a percentage', () => {
    expect(load('once', ['--out', '/s', '--shrink-threshold', '25%']).shrinkThreshold).toBe(0.25);
    expect(load('once', ['--out', '/s', '--shrink-threshold', '0']).shrinkThreshold).toBe(0);
    expect(configError(() => load('once', ['--out', '/s', '--shrink-threshold', '2'])).message).toContain(
      'a fraction from 0 to 1',
    );
  });
});

describe('loadConfig: run and export', () => {
  it('keeps everything after -- intact as the child command', () => {
    const config = load('run', [
      '--on-change',
      'signal:HUP',
      '--',
      'node',
      '--env',
      'x',
      '--',
      '--token=keep',
    ]);
    expect(config.run).toEqual({
      command: ['node', '--env', 'x', '--', '--token=keep'],
      onChange: { action: 'signal', signal: 'SIGHUP' },
    });
    expect(config.source.env).toBe('Production');
    expect(config.intervalMs).toBe(30_000);
  });

  it('defaults --on-change to none and requires a command', () => {
    expect(load('run', ['--', 'env']).run.onChange).toEqual({ action: 'none' });
    expect(configError(() => load('run', [])).message).toContain('expected the command to run after --');
    expect(configError(() => load('run', ['node', 'server.js'])).message).toContain(
      'put the command to run after --',
    );
  });

  it('refuses -- for other commands', () => {
    expect(configError(() => load('export', ['--', 'ls'])).message).toContain(
      'only phasekit run takes a command after --',
    );
  });

  it('takes one export format, default dotenv', () => {
    expect(load('export', []).format).toBe('dotenv');
    expect(load('export', ['--format', 'shell']).format).toBe('shell');
    expect(configError(() => load('export', ['--format', 'files'])).message).toContain(
      '--format / PHASE_FORMAT (from the command line): expected one of dotenv, json, yaml, shell, properties',
    );
    expect(configError(() => load('export', ['--format', 'json,yaml'])).message).toContain(
      'expected one of dotenv',
    );
    expect(configError(() => load('export', ['--format', 'jsn'])).message).toContain('did you mean json?');
  });
});

describe('loadConfig: YAML file', () => {
  const yaml = `
host: https://phase.example.com
app: shop
interval: 45            # bare number: seconds
fileMode: 0440          # octal, even unquoted
tags: [web]
notify:
  signal: HUP
  pidfile: /run/app/app.pid
  exec: ["sh", "-c", "echo changed"]
outputs:
  - name: app
    out: /secrets/app
    format: files,dotenv
  - out: /secrets/db
    env: Staging
    path: /db
    recursive: true
    format: [json]
    fileMode: "0400"
    keys: [DATABASE_URL, REDIS_URL]
`;
  const readFile = files({ '/etc/phasekit.yaml': yaml });

  it('builds one output per entry, inheriting the top level and flags', () => {
    const config = load('sidecar', ['--config', '/etc/phasekit.yaml', '--env', 'Production'], {
      env: { PHASE_SERVICE_TOKEN: TOKEN },
      readFile,
    });
    expect(config.host).toBe('https://phase.example.com');
    expect(config.intervalMs).toBe(45_000);
    expect(config.notify).toMatchObject({
      signal: 'SIGHUP',
      pidfile: '/run/app/app.pid',
      exec: ['sh', '-c', 'echo changed'],
    });
    expect(config.outputs).toEqual([
      {
        name: 'app',
        source: { app: 'shop', env: 'Production', path: '/', recursive: false, tags: ['web'] },
        out: '/secrets/app',
        formats: ['files', 'dotenv'],
        fileMode: 0o440,
        uid: undefined,
        gid: undefined,
      },
      {
        name: 'outputs[1]',
        source: {
          app: 'shop',
          env: 'Staging',
          path: '/db',
          recursive: true,
          tags: ['web'],
          keys: ['DATABASE_URL', 'REDIS_URL'],
        },
        out: '/secrets/db',
        formats: ['json'],
        fileMode: 0o400,
        uid: undefined,
        gid: undefined,
      },
    ]);
  });

  it('uses the top level (not outputs) for run and export', () => {
    const config = load('export', ['--config', '/etc/phasekit.yaml'], { readFile });
    expect(config.source).toEqual({
      app: 'shop',
      env: 'Production',
      path: '/',
      recursive: false,
      tags: ['web'],
    });
  });

  it('reports bad values by their place in the file', () => {
    const bad = files({ '/c.yaml': 'outputs:\n  - out: /a\n    fileMode: 999\n  - out: /a/b\n' });
    const error = configError(() => load('sidecar', ['--config', '/c.yaml'], { readFile: bad }));
    expect(error.message).toContain(
      '--file-mode (from the config file at outputs[0].fileMode): expected an octal file mode',
    );
    expect(error.message).toContain('outputs must write to separate directories');
  });

  it('refuses unknown keys with a suggestion, misplaced keys, and a token', () => {
    const bad = files({
      '/c.yaml':
        'intervall: 5s\ntoken: secret-in-file\nnotify:\n  signl: HUP\noutputs:\n  - out: /a\n    interval: 5s\n',
    });
    const error = configError(() => load('sidecar', ['--config', '/c.yaml'], { readFile: bad }));
    expect(error.message).toContain('config file key intervall: unknown setting; did you mean interval?');
    expect(error.message).toContain(
      'config file key notify.signl: unknown setting; did you mean notify.signal?',
    );
    expect(error.message).toContain('config file key token: a token is never read from the config file');
    expect(error.message).toContain('config file key outputs[0].interval: not a per-output setting');
    expect(error.message).not.toContain('secret-in-file');
  });

  it('lets an entry name its own app, and reports an inherited gap once', () => {
    const yaml2 = files({ '/c.yaml': 'app: shop\noutputs:\n  - out: /a\n  - out: /b\n    appId: a1b2\n' });
    const config = load('once', ['--config', '/c.yaml'], { readFile: yaml2 });
    expect(config.outputs.map((output) => output.source)).toEqual([
      { app: 'shop', env: 'Production', path: '/', recursive: false },
      { appId: 'a1b2', env: 'Production', path: '/', recursive: false },
    ]);
    const error = configError(() =>
      load('once', ['--config', '/c.yaml'], { env: { PHASE_SERVICE_TOKEN: TOKEN }, readFile: yaml2 }),
    );
    expect(error.message.match(/--env \/ PHASE_ENV: required/g)).toHaveLength(1);
  });

  it('reports invalid YAML by code and position only', () => {
    const bad = files({ '/c.yaml': 'host: https://x\nhost: canary-secret-value\n' });
    const error = configError(() => load('export', ['--config', '/c.yaml'], { readFile: bad }));
    expect(error.message).toContain(
      '--config / PHASE_CONFIG (from the command line): not valid YAML (DUPLICATE_KEY at line 2, column 1)',
    );
    expect(error.message).not.toContain('canary-secret-value');
  });

  it('reports an unreadable file without its path', () => {
    const error = configError(() =>
      load('export', [], { env: { ...BASE_ENV, PHASE_CONFIG: '/nope.yaml' }, readFile: files({}) }),
    );
    expect(error.message).toContain(
      '--config / PHASE_CONFIG (from PHASE_CONFIG): cannot read the file (ENOENT)',
    );
    expect(error.message).not.toContain('/nope.yaml');
  });
});

describe('loadConfig: never echoes a value', () => {
  const CANARY = 'zq-canary-7f3a9c';

  it('keeps a canary planted in every flag, env var and file key out of the message', () => {
    for (const command of COMMANDS) {
      const argv: string[] = [];
      const env: Record<string, string> = { PHASE_SERVICE_TOKEN: `${CANARY} ${CANARY}` };
      const yaml: string[] = [];
      const notify: string[] = [];
      for (const spec of Object.values(SETTINGS)) {
        if (spec.commands.includes(command) && spec.flag !== '--config') argv.push(`${spec.flag}=${CANARY}`);
        if (spec.env !== undefined && spec.env !== 'PHASE_CONFIG') env[spec.env] = CANARY;
        if (spec.file?.startsWith('notify.')) notify.push(`  ${spec.file.slice(7)}: ${CANARY}`);
        else if (spec.file !== undefined) yaml.push(`${spec.file}: ${CANARY}`);
      }
      argv.push('--token', CANARY, `--token=${CANARY}`, `--${CANARY}=${CANARY}`, CANARY, `-${CANARY}`);
      if (command === 'run') argv.push('--', CANARY);
      const text = [...yaml, 'notify:', ...notify, `outputs:`, `  - out: ${CANARY}`, `    ${CANARY}: x`].join(
        '\n',
      );
      const readFile = (path: string): string => {
        if (path === '/c.yaml') return text;
        throw new Error(`ENOENT: no such file, open '${path}' containing ${CANARY}`);
      };
      for (const variant of [
        { argv, env: { ...env, PHASE_CONFIG: '/c.yaml' } },
        { argv: [], env: { ...env, PHASE_CONFIG: '/c.yaml' } },
        { argv: [], env: { ...env, PHASE_CONFIG: CANARY } },
      ]) {
        const error = configError(() => loadConfig({ command, ...variant, readFile }));
        expect(error.message.toLowerCase()).not.toContain(CANARY.toLowerCase());
        expect(inspect(error, { depth: null }).toLowerCase()).not.toContain(CANARY.toLowerCase());
        expect(error.message.split('\n').length).toBeGreaterThan(3);
      }
    }
  });
});

describe('USAGE and wantsHelp', () => {
  it('lists exactly the flags each command uses, with env vars and defaults', () => {
    for (const command of COMMANDS) {
      for (const spec of Object.values(SETTINGS)) {
        const listed = new RegExp(`^  ${spec.flag}\\b`, 'm').test(USAGE[command]);
        expect(listed, `${command} ${spec.flag}`).toBe(spec.commands.includes(command));
      }
    }
    expect(USAGE.sidecar).toContain('default 30s; env PHASE_POLL_INTERVAL');
    expect(USAGE.run).toContain('Usage: phasekit run [options] -- COMMAND [ARGS...]');
    expect(USAGE.export).toMatch(/--format <format> +output format: one of dotenv/);
  });

  it('detects --help before --', () => {
    expect(wantsHelp(['--app', 'x', '--help'])).toBe(true);
    expect(wantsHelp(['-h'])).toBe(true);
    expect(wantsHelp(['--', 'node', '--help'])).toBe(false);
  });

  it('refuses an unknown command with a suggestion', () => {
    const error = configError(() => loadConfig({ command: 'sidcar', argv: [], env: {} }));
    expect(error.message).toContain('did you mean sidecar?');
  });
});

describe('docs/reference/configuration.md', () => {
  const doc = readFileSync(new URL('../../../docs/reference/configuration.md', import.meta.url), 'utf8');

  it('documents every flag, env var and YAML key', () => {
    for (const spec of Object.values(SETTINGS)) {
      expect(doc, spec.flag).toContain(`\`${spec.flag}\``);
      if (spec.env !== undefined) expect(doc, spec.env).toContain(`\`${spec.env}\``);
      if (spec.file !== undefined) expect(doc, spec.file).toContain(`\`${spec.file}\``);
    }
  });

  it('has a YAML example that loads', () => {
    const yaml = /```yaml\n([\s\S]*?)```/.exec(doc)?.[1] ?? '';
    const config = load('sidecar', ['--config', '/etc/phasekit/phasekit.yaml'], {
      readFile: files({ '/etc/phasekit/phasekit.yaml': yaml }),
    });
    expect(config.outputs.map((output) => [output.name, output.out, output.fileMode, output.gid])).toEqual([
      ['app', '/secrets/app', 0o440, 1000],
      ['db', '/secrets/db', 0o400, 1000],
    ]);
    expect(config.outputs[1]?.source).toEqual({
      app: 'shop',
      env: 'Production',
      path: '/database',
      recursive: true,
      keys: ['DATABASE_URL', 'DATABASE_CA'],
    });
    expect(config.notify).toMatchObject({ signal: 'SIGHUP', debounceMs: 2000 });
    expect(config.healthAddr).toEqual({ host: '0.0.0.0', port: 8080 });
  });
});

describe('exitCodeFor', () => {
  it.each([
    [ErrorCode.CONFIG, 2],
    [ErrorCode.INVALID_TOKEN, 2],
    [ErrorCode.UNAUTHORIZED, 3],
    [ErrorCode.FORBIDDEN, 3],
    [ErrorCode.NOT_FOUND, 4],
    [ErrorCode.NETWORK, 5],
    [ErrorCode.TIMEOUT, 5],
    [ErrorCode.RATE_LIMITED, 5],
    [ErrorCode.DECRYPT, 6],
    [ErrorCode.REFERENCE, 4],
    [ErrorCode.CONFLICT, 1],
    [ErrorCode.ABORTED, 1],
  ] as const)('maps PhaseError %s to %i', (code, exit) => {
    expect(exitCodeFor(new PhaseError(code, 'x'))).toBe(exit);
  });

  it('maps a missing reference to 4 and a reference cycle to 6', () => {
    expect(exitCodeFor(new PhaseError(ErrorCode.REFERENCE, 'x', { reason: 'missing' }))).toBe(4);
    expect(exitCodeFor(new PhaseError(ErrorCode.REFERENCE, 'x', { reason: 'cycle' }))).toBe(6);
  });

  it('maps agent errors and anything else', () => {
    const guard = new AgentError('GUARD_REFUSED', 'refusing an empty set', { cause: new Error('inner') });
    expect(exitCodeFor(guard)).toBe(7);
    expect(isAgentError(guard, 'GUARD_REFUSED')).toBe(true);
    expect(guard.cause).toBeInstanceOf(Error);
    expect(exitCodeFor(new AgentError('WRITE', 'x'))).toBe(8);
    expect(exitCodeFor(new AgentError('LOCKED', 'x'))).toBe(8);
    expect(exitCodeFor(new AgentError('USAGE', 'x'))).toBe(2);
    expect(exitCodeFor(new AgentError('NOTIFY_HTTP_FAILED', 'x'))).toBe(1);
    expect(exitCodeFor(new AgentError('NOTIFY_CONFIG', 'x'))).toBe(2);
    expect(exitCodeFor(new Error('x'))).toBe(1);
    expect(exitCodeFor('x')).toBe(1);
  });
});

describe('parse helpers', () => {
  it.each([
    ['250ms', 250],
    ['10s', 10_000],
    ['5m', 300_000],
    ['1h', 3_600_000],
    ['1m30s', 90_000],
    ['30', 30_000],
    ['0.5', 500],
    ['1.5s', 1500],
    [' 2s ', 2000],
    ['0', 0],
  ])('parseDuration(%s) = %i', (input, ms) => {
    expect(parseDuration(input)).toBe(ms);
  });

  it.each(['', '10 s', '-1s', '10S', '1d', 'ms', '1e3', 'soon', '9999h'])(
    'parseDuration refuses %j, naming the setting',
    (input) => {
      expect(() => parseDuration(input, '--interval')).toThrow(/^--interval: expected a duration/);
    },
  );

  it('parseSignal accepts SIGHUP and HUP and suggests case fixes and near misses', () => {
    expect(parseSignal('SIGHUP')).toBe('SIGHUP');
    expect(parseSignal('HUP')).toBe('SIGHUP');
    expect(parseSignal('USR2')).toBe('SIGUSR2');
    expect(() => parseSignal('hup', '--notify-signal')).toThrow(
      '--notify-signal: expected a signal name such as SIGHUP or HUP in upper case; did you mean SIGHUP?',
    );
    expect(() => parseSignal('sigterm')).toThrow('did you mean SIGTERM?');
    expect(() => parseSignal('SIGHPU')).toThrow('did you mean SIGHUP?');
    expect(() => parseSignal('1')).toThrow('not a number');
    expect(() => parseSignal('SIGNOPE_LONG_NAME')).toThrow(/expected a signal name such as SIGHUP or HUP$/);
  });

  it('parseFileMode reads octal', () => {
    expect(parseFileMode('0400')).toBe(0o400);
    expect(parseFileMode('0o440')).toBe(0o440);
    expect(parseFileMode('640')).toBe(0o640);
    for (const bad of ['0800', '4755', '2560', '0x1ff', '', '0o0400'])
      expect(() => parseFileMode(bad)).toThrow(PhaseError);
  });

  it('parseListenAddress reads host:port, :port and [ipv6]:port', () => {
    expect(parseListenAddress(':8080')).toEqual({ host: '0.0.0.0', port: 8080 });
    expect(parseListenAddress('127.0.0.1:0')).toEqual({ host: '127.0.0.1', port: 0 });
    expect(parseListenAddress('[::1]:9090')).toEqual({ host: '::1', port: 9090 });
    expect(parseListenAddress('localhost:80')).toEqual({ host: 'localhost', port: 80 });
    for (const bad of ['8080', 'host', ':70000', '[zz]:1', 'a b:1', '::1:80']) {
      expect(() => parseListenAddress(bad, '--health-addr')).toThrow(/^--health-addr: expected host:port/);
    }
  });

  it('isLoopbackHost knows loopback and nothing else', () => {
    for (const host of [
      'localhost',
      'LOCALHOST',
      '127.0.0.1',
      '127.1.2.3',
      '::1',
      '[::1]',
      '0:0:0:0:0:0:0:1',
      '::ffff:127.0.0.1',
    ]) {
      expect(isLoopbackHost(host), host).toBe(true);
    }
    for (const host of [
      'example.com',
      '10.0.0.1',
      '128.0.0.1',
      '::2',
      'localhost.example.com',
      '0.0.0.0',
      '::',
    ]) {
      expect(isLoopbackHost(host), host).toBe(false);
    }
  });

  it('tryParseCommand splits without a shell', () => {
    expect(tryParseCommand('["kill", "-HUP", "1"]')).toEqual({ ok: true, value: ['kill', '-HUP', '1'] });
    expect(tryParseCommand(`a 'b c' "d\\"e" f\\ g ''`)).toEqual({
      ok: true,
      value: ['a', 'b c', 'd"e', 'f g', ''],
    });
    expect(tryParseCommand('echo "open').ok).toBe(false);
    expect(tryParseCommand('a | b').ok).toBe(false);
    expect(tryParseCommand("echo '$HOME'")).toEqual({ ok: true, value: ['echo', '$HOME'] });
    expect(tryParseCommand('[1, 2]').ok).toBe(false);
    expect(tryParseCommand('   ').ok).toBe(false);
  });
});

describe('configFileNamed and the YAML parser', () => {
  it('tells whether a config file is named by flag or env, so the CLI loads the YAML parser only then', () => {
    expect(configFileNamed('once', ['--app', 'a', '--env', 'e', '--out', '/o'], {})).toBe(false);
    expect(configFileNamed('once', ['--config', '/etc/phasekit.yaml'], {})).toBe(true);
    expect(configFileNamed('once', ['--config=/etc/phasekit.yaml'], {})).toBe(true);
    expect(configFileNamed('sidecar', [], { PHASE_CONFIG: '/etc/phasekit.yaml' })).toBe(true);
    expect(configFileNamed('nope', ['--config', 'x'], {})).toBe(false);
  });

  it('the core loadConfig names the missing parser instead of failing obscurely', () => {
    expect(() =>
      loadCore({ command: 'once', argv: ['--config', '/x.yaml'], env: {}, readFile: () => 'app: a\n' }),
    ).toThrow(/options\.parseYaml/);
  });
});
