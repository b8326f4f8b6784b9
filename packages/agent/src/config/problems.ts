// Collecting configuration problems: each names its flag, env var or YAML key, never the value.
import { commandName, isCommand } from './types.js';
import { SETTINGS } from './settings.js';
import type { Raw, SettingKey, SettingSpec } from './settings.js';
import { ErrorCode, PhaseError } from '@phasekit/sdk';

// ---------------------------------------------------------------------------------------------------------------
// Problems

export type Origin =
  | { readonly layer: 'flag' }
  | { readonly layer: 'env'; readonly name: string }
  | { readonly layer: 'file'; readonly at: string };

/** Precedence rank of a layer: a higher rank wins. */
export const RANK = { flag: 3, env: 2, file: 1 } as const;

export interface RawSetting {
  readonly raw: Raw;
  readonly origin: Origin;
}

export class Problems {
  readonly lines: string[] = [];

  add(subject: string, text: string, origin?: Origin): void {
    const line = `${subject}${origin === undefined ? '' : ` (${describeOrigin(origin)})`}: ${text}`;
    if (!this.lines.includes(line)) this.lines.push(line); // Outputs inheriting one bad value report it once.
  }

  setting(key: SettingKey, text: string, origin?: Origin): void {
    this.add(label(key), text, origin);
  }

  throwIfAny(command: string): void {
    if (this.lines.length === 0) return;
    const count = this.lines.length === 1 ? '1 problem' : `${this.lines.length} problems`;
    const where = isCommand(command) ? `phasekit ${commandName(command)}` : 'phasekit';
    throw new PhaseError(
      ErrorCode.CONFIG,
      [`Invalid configuration for ${where} (${count}):`, ...this.lines.map((line) => `  - ${line}`)].join(
        '\n',
      ),
    );
  }
}

function describeOrigin(origin: Origin): string {
  switch (origin.layer) {
    case 'flag':
      return 'from the command line';
    case 'env':
      return `from ${origin.name}`;
    case 'file':
      return `from the config file at ${origin.at}`;
  }
}

export function label(key: SettingKey): string {
  const spec: SettingSpec<unknown> = SETTINGS[key];
  return spec.env === undefined ? spec.flag : `${spec.flag} / ${spec.env}`;
}

export function settingKeys(): SettingKey[] {
  return Object.keys(SETTINGS) as SettingKey[];
}

// Echo a flag's name only when it looks like one: `--pss_service:v2:...` is not repeated back.
export const SAFE_FLAG_NAME = /^[a-z][a-z0-9-]{0,39}$/i;
export const SAFE_KEY_NAME = /^[a-z][a-z0-9_.-]{0,39}$/i;
