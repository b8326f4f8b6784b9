import { parseDocument } from 'yaml';
import { loadConfig as loadWith } from './config/index.js';
import type { AgentConfig, Command, ConfigFor, LoadConfigOptions } from './config/index.js';

/**
 * Builds the configuration of one command from argv, env and an optional YAML file (precedence: flag, env, file,
 * default). Pure apart from `readFile`. The library's entry point; the CLI calls the core in config/ and loads
 * the YAML parser only when a config file is named.
 *
 * @returns A deeply frozen config; `auth.token` is non-enumerable so serialising the config leaves it out.
 * @throws {PhaseError} `CONFIG`, one error that lists every problem by flag, env var or file key, never a value.
 * @example
 * const config = loadConfig({ command: 'once', argv: ['--app', 'shop', '--env', 'prod', '--out', '/secrets'], env: process.env });
 */
export function loadConfig<C extends Command>(options: LoadConfigOptions<C>): ConfigFor<C>;
export function loadConfig(options: LoadConfigOptions<string>): AgentConfig;
export function loadConfig(options: LoadConfigOptions<string>): AgentConfig {
  return loadWith({ parseYaml: parseDocument, ...options });
}
