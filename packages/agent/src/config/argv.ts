// The command line: flags to raw settings, with a "did you mean" for a near miss. node's util.parseArgs splits argv
// into tokens (--x=v, --x v, --, short options); what the tokens mean, and every problem, is decided here.
import { parseArgs, type ParseArgsOptionsConfig } from 'node:util';
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

/** Refused outright (see below), but declared so that parseArgs takes the token after them as their value. */
const TOKEN_FLAGS = ['token', 'service-token'];

// Every flag of every command is declared, so a flag refused for this command still takes its value with it.
const PARSE_OPTIONS: ParseArgsOptionsConfig = {};
for (const [flag, key] of FLAG_INDEX)
  PARSE_OPTIONS[flag] = { type: SETTINGS[key].kind === 'boolean' ? 'boolean' : 'string' };
for (const flag of TOKEN_FLAGS) PARSE_OPTIONS[flag] = { type: 'string' };

export function parseArgv(command: Command, argv: readonly string[], problems: Problems): ParsedArgv {
  const flags = new Map<SettingKey, RawSetting>();
  const origin: Origin = { layer: 'flag' };
  const known = [...FLAG_INDEX].filter(([, key]) => SETTINGS[key].commands.includes(command));
  const shortReported = new Set<number>();
  let rest: string[] | undefined;

  // parseArgs gives a string option the next argument even when that is another option (`--app --env x`); then
  // the option has no value, and reading starts again at the argument it swallowed.
  let start = 0;
  read: while (start < argv.length) {
    const { tokens } = parseArgs({
      args: argv.slice(start),
      options: PARSE_OPTIONS,
      strict: false,
      allowPositionals: true,
      tokens: true,
    });
    for (const token of tokens) {
      const i = start + token.index;
      const position = `argument ${i + 1}`;
      if (token.kind === 'option-terminator') {
        rest = argv.slice(i + 1);
        break read;
      }
      if (token.kind === 'positional') {
        if (command === 'run') problems.add(position, 'unexpected; put the command to run after --');
        else
          problems.add(
            position,
            `unexpected; phasekit ${commandName(command)} takes no positional arguments`,
          );
        continue;
      }
      if (!token.rawName.startsWith('--')) {
        // A group such as -abc comes as one token per letter: one problem per argument, naming only a lone letter.
        if (!shortReported.has(i)) {
          shortReported.add(i);
          const arg = argv[i] ?? '';
          problems.add(
            /^-[a-zA-Z]$/.test(arg) ? arg : position,
            'unknown option (phasekit has no short options)',
          );
        }
        continue;
      }

      const swallowed = token.inlineValue === false && isOptionLike(token.value ?? '');
      option(token.name, swallowed ? undefined : token.value, token.inlineValue === true, position);
      if (swallowed) {
        start = i + 1;
        continue read;
      }
    }
    break;
  }
  return { flags, rest };

  /** Records one long option as a raw setting, or the problem with it. */
  function option(name: string, value: string | undefined, inline: boolean, position: string): void {
    if (TOKEN_FLAGS.includes(name)) {
      problems.add(
        `--${name}`,
        'a token is never accepted on the command line, because argv is visible to other processes ' +
          '(ps, /proc); set PHASE_SERVICE_TOKEN or use --token-file / PHASE_TOKEN_FILE',
      );
      return;
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
      return;
    }
    const spec: SettingSpec<unknown> = SETTINGS[key];
    if (!spec.commands.includes(command)) {
      problems.add(`--${name}`, `not used by phasekit ${commandName(command)}`);
      return;
    }
    if (spec.kind === 'boolean') {
      if (negated === key && name !== spec.flag.slice(2)) {
        if (inline) {
          problems.add(`--${name}`, 'takes no value', origin);
          return;
        }
        flags.set(key, { raw: 'false', origin });
      } else {
        flags.set(key, { raw: value ?? 'true', origin });
      }
      return;
    }
    if (value === undefined) {
      problems.add(spec.flag, `expected a value after ${spec.flag}`);
      return;
    }
    if (spec.kind === 'list') {
      const previous = flags.get(key)?.raw ?? [];
      flags.set(key, { raw: [...(typeof previous === 'string' ? [previous] : previous), value], origin });
    } else {
      flags.set(key, { raw: value, origin }); // The last occurrence wins, so wrappers can append overrides.
    }
  }
}

/** An argument that is an option rather than a value (a lone `-` is a value, as for stdin). */
function isOptionLike(arg: string): boolean {
  return arg.startsWith('-') && arg.length > 1;
}
