// The YAML config file: top-level settings, notify.* and outputs[].
import { SETTINGS } from './settings.js';
import type { Raw, SettingKey } from './settings.js';
import { SAFE_KEY_NAME, settingKeys } from './problems.js';
import type { RawSetting, Problems } from './problems.js';
import type { parseDocument } from 'yaml';
import { suggest } from '../parse.js';

// ---------------------------------------------------------------------------------------------------------------
// The config file

export interface FileLayer {
  readonly top: Map<SettingKey, RawSetting>;
  /** Undefined when the file has no `outputs`. */
  readonly outputs: readonly OutputEntry[] | undefined;
}

export interface OutputEntry {
  readonly at: string;
  readonly name: string | undefined;
  readonly values: Map<SettingKey, RawSetting>;
}

const FILE_INDEX: ReadonlyMap<string, SettingKey> = new Map(
  settingKeys().flatMap((key) => {
    const file = SETTINGS[key].file;
    return file === undefined ? [] : [[file, key] as const];
  }),
);
const NOTIFY_KEYS = [...FILE_INDEX.keys()]
  .filter((key) => key.startsWith('notify.'))
  .map((key) => key.slice(7));
const TOP_KEYS = [...[...FILE_INDEX.keys()].filter((key) => !key.includes('.')), 'notify', 'outputs'];
const OUTPUT_KEYS = [
  'name',
  ...settingKeys().flatMap((key) => (SETTINGS[key].perOutput === true ? [SETTINGS[key].file ?? ''] : [])),
];

const isRecord = (value: unknown): value is Record<string, unknown> =>
  typeof value === 'object' && value !== null && !Array.isArray(value);

/** The `yaml` package's `parseDocument`, passed in so that only a CLI run with a config file loads that package. */
export type YamlParser = typeof parseDocument;

export function loadFile(
  source: RawSetting,
  readFile: (path: string) => string,
  parseYaml: YamlParser | undefined,
  problems: Problems,
): FileLayer | undefined {
  const path = typeof source.raw === 'string' ? source.raw.trim() : '';
  if (path === '') {
    problems.setting('config', 'expected a file path', source.origin);
    return undefined;
  }
  let content: string;
  try {
    content = readFile(path);
  } catch (error) {
    problems.setting('config', `cannot read the file${errnoSuffix(error)}`, source.origin);
    return undefined;
  }
  if (parseYaml === undefined) {
    problems.setting('config', 'no YAML parser was given to loadConfig (options.parseYaml)', source.origin);
    return undefined;
  }
  // The failsafe schema reads every scalar as a string, so YAML values go through the same parsers as flags and
  // env vars: `fileMode: 0440` stays octal and `interval: 30` means 30 seconds.
  const doc = parseYaml(content, { schema: 'failsafe', prettyErrors: false, uniqueKeys: true });
  const [first] = doc.errors;
  if (first !== undefined) {
    // The parser's own message quotes the offending line, which may hold a secret: report code and position.
    const { line, column } = position(content, first.pos[0]);
    problems.setting(
      'config',
      `not valid YAML (${first.code} at line ${line}, column ${column})`,
      source.origin,
    );
    return undefined;
  }
  const data: unknown = doc.toJS({ maxAliasCount: 100 }) ?? {};
  if (!isRecord(data)) {
    problems.setting('config', 'expected a YAML mapping of settings at the top level', source.origin);
    return undefined;
  }

  const top = new Map<SettingKey, RawSetting>();
  let outputs: OutputEntry[] | undefined;
  for (const [name, value] of Object.entries(data)) {
    if (name === 'outputs') {
      outputs = readOutputs(value, problems);
    } else if (name === 'notify') {
      if (value === null || value === '') continue;
      if (!isRecord(value)) {
        problems.add('config file key notify', 'expected a mapping such as { signal: SIGHUP, pidfile: ... }');
        continue;
      }
      for (const [sub, subValue] of Object.entries(value)) {
        readKey(`notify.${sub}`, subValue, top, problems, {
          candidates: NOTIFY_KEYS.map((key) => `notify.${key}`),
        });
      }
    } else {
      readKey(name, value, top, problems, { candidates: TOP_KEYS });
    }
  }
  return { top, outputs };
}

function readKey(
  name: string,
  value: unknown,
  into: Map<SettingKey, RawSetting>,
  problems: Problems,
  context: { readonly candidates: readonly string[]; readonly prefix?: string },
): void {
  const { candidates, prefix = '' } = context;
  const key = FILE_INDEX.get(name);
  const at = `${prefix}${SAFE_KEY_NAME.test(name) ? name : '(unnamed)'}`;
  const subject = `config file key ${at}`;
  if (key === undefined || !candidates.includes(name)) {
    if (/^(?:.*\.)?(?:token|serviceToken|service_token)$/i.test(name)) {
      problems.add(
        subject,
        'a token is never read from the config file; set PHASE_SERVICE_TOKEN or tokenFile / --token-file',
      );
      return;
    }
    // Name the key only when it is a near miss of a real one: an unknown key could be anything.
    const near = SAFE_KEY_NAME.test(name) ? suggest(name, candidates) : undefined;
    if (near !== undefined) {
      problems.add(subject, `unknown setting; did you mean ${near}?`);
    } else if (name === 'name') {
      problems.add(subject, 'unknown setting (name belongs in an outputs entry)');
    } else {
      const where = prefix === '' ? 'at the top level' : `in ${prefix.slice(0, -1)}`;
      problems.add(`config file`, `unknown setting ${where}; expected one of ${candidates.join(', ')}`);
    }
    return;
  }
  const raw = toRaw(value);
  if (raw === undefined) return;
  if (raw === null) {
    problems.add(subject, 'expected a string or a list of strings');
    return;
  }
  into.set(key, { raw, origin: { layer: 'file', at } });
}

/** A YAML value as a Raw: undefined for null or empty (unset), null when it is a mapping or a nested list. */
function toRaw(value: unknown): Raw | undefined | null {
  if (value === null || value === undefined) return undefined;
  if (typeof value === 'string') return value.trim() === '' ? undefined : value;
  if (Array.isArray(value) && value.every((item) => typeof item === 'string')) return value;
  return null;
}

function readOutputs(value: unknown, problems: Problems): OutputEntry[] | undefined {
  if (!Array.isArray(value)) {
    problems.add(
      'config file key outputs',
      'expected a list of outputs, each a mapping with out, format, ...',
    );
    return undefined;
  }
  return value.flatMap((item: unknown, index): OutputEntry[] => {
    const at = `outputs[${index}]`;
    if (!isRecord(item)) {
      problems.add(`config file key ${at}`, 'expected a mapping with out, format, path, ...');
      return [];
    }
    const values = new Map<SettingKey, RawSetting>();
    let name: string | undefined;
    for (const [key, entryValue] of Object.entries(item)) {
      const entryAt = `${at}.${SAFE_KEY_NAME.test(key) ? key : '(unnamed)'}`;
      if (key === 'name') {
        if (typeof entryValue === 'string' && /^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/.test(entryValue)) {
          name = entryValue;
        } else {
          problems.add(`config file key ${entryAt}`, 'expected a name of letters, digits, ".", "_" or "-"');
        }
        continue;
      }
      const settingKey = FILE_INDEX.get(key);
      if (settingKey !== undefined && SETTINGS[settingKey].perOutput !== true) {
        problems.add(`config file key ${entryAt}`, 'not a per-output setting; set it at the top level');
        continue;
      }
      readKey(key, entryValue, values, problems, { candidates: OUTPUT_KEYS, prefix: `${at}.` });
    }
    return [{ at, name, values }];
  });
}

export function position(content: string, offset: number): { line: number; column: number } {
  const before = content.slice(0, offset).split('\n');
  return { line: before.length, column: (before.at(-1)?.length ?? 0) + 1 };
}

export function errnoSuffix(error: unknown): string {
  const code = isRecord(error) ? error['code'] : undefined;
  return typeof code === 'string' && /^E[A-Z]+$/.test(code) ? ` (${code})` : '';
}
