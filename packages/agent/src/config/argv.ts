// The command line: flags to raw settings, with a "did you mean" for a near miss.
import { commandName } from './types.js';
import type { Command } from './types.js';
import { SETTINGS } from './settings.js';
import type { SettingKey, SettingSpec } from './settings.js';
import { SAFE_FLAG_NAME, settingKeys } from './problems.js';
import type { Origin, RawSetting, Problems } from './problems.js';
import { suggest } from '../parse.js';

// ---------------------------------------------------------------------------------------------------------------
// argv

interface ParsedArgv {
  readonly flags: Map<SettingKey, RawSetting>;
  readonly rest: readonly string[] | undefined;
}

const FLAG_INDEX: ReadonlyMap<string, SettingKey> = new Map(
  settingKeys().map((key) => [SETTINGS[key].flag.slice(2), key]),
);

export function parseArgv(command: Command, argv: readonly string[], problems: Problems): ParsedArgv {
  const flags = new Map<SettingKey, RawSetting>();
  const origin: Origin = { layer: 'flag' };
  const known = [...FLAG_INDEX].filter(([, key]) => SETTINGS[key].commands.includes(command));
  let rest: string[] | undefined;

  for (let i = 0; i < argv.length; i += 1) {
    const arg = argv[i] ?? '';
    const position = `argument ${i + 1}`;
    if (arg === '--') {
      rest = argv.slice(i + 1);
      break;
    }
    if (!arg.startsWith('--')) {
      if (/^-[a-zA-Z]$/.test(arg)) problems.add(arg, 'unknown option (phasekit has no short options)');
      else if (command === 'run') problems.add(position, 'unexpected; put the command to run after --');
      else
        problems.add(position, `unexpected; phasekit ${commandName(command)} takes no positional arguments`);
      continue;
    }
    const equals = arg.indexOf('=');
    const name = equals === -1 ? arg.slice(2) : arg.slice(2, equals);
    const inline = equals === -1 ? undefined : arg.slice(equals + 1);
    const next = argv[i + 1];
    const nextIsValue = next !== undefined && next !== '--' && !(next.startsWith('-') && next.length > 1);

    if (name === 'token' || name === 'service-token') {
      if (inline === undefined && nextIsValue) i += 1; // Skip the token so it is not reported as an argument.
      problems.add(
        `--${name}`,
        'a token is never accepted on the command line, because argv is visible to other processes ' +
          '(ps, /proc); set PHASE_SERVICE_TOKEN or use --token-file / PHASE_TOKEN_FILE',
      );
      continue;
    }

    const negated = name.startsWith('no-') ? FLAG_INDEX.get(name.slice(3)) : undefined;
    const key =
      FLAG_INDEX.get(name) ??
      (negated !== undefined && SETTINGS[negated].kind === 'boolean' ? negated : undefined);
    if (key === undefined) {
      // Name the option only when it is a near miss of a real one: an unknown name could be anything.
      const candidates = known.flatMap(([flag, k]) =>
        SETTINGS[k].kind === 'boolean' ? [flag, `no-${flag}`] : [flag],
      );
      const near = SAFE_FLAG_NAME.test(name) ? suggest(name, candidates) : undefined;
      if (near === undefined) problems.add(position, 'unknown option');
      else problems.add(`--${name}`, `unknown option; did you mean --${near}?`);
      continue;
    }
    const spec: SettingSpec<unknown> = SETTINGS[key];
    if (!spec.commands.includes(command)) {
      if (spec.kind !== 'boolean' && inline === undefined && nextIsValue) i += 1;
      problems.add(`--${name}`, `not used by phasekit ${commandName(command)}`);
      continue;
    }

    if (spec.kind === 'boolean') {
      if (negated === key && name !== spec.flag.slice(2)) {
        if (inline !== undefined) problems.add(`--${name}`, 'takes no value', origin);
        else flags.set(key, { raw: 'false', origin });
      } else {
        flags.set(key, { raw: inline ?? 'true', origin });
      }
      continue;
    }

    let value = inline;
    if (value === undefined) {
      if (!nextIsValue) {
        problems.add(spec.flag, `expected a value after ${spec.flag}`);
        continue;
      }
      value = next;
      i += 1;
    }
    if (spec.kind === 'list') {
      const previous = flags.get(key)?.raw ?? [];
      flags.set(key, { raw: [...(typeof previous === 'string' ? [previous] : previous), value], origin });
    } else {
      flags.set(key, { raw: value, origin }); // The last occurrence wins, so wrappers can append overrides.
    }
  }
  return { flags, rest };
}
