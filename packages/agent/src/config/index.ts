// The agent's configuration: one pure loader from (command, argv, env, an optional YAML file) to a frozen,
// typed AgentConfig. Nothing here reads process.env or process.argv; only cli.ts does.
//
// Every setting is described once, in SETTINGS (settings.ts): its flag, env var, YAML key, the commands that use it,
// its help line and its parser. Error messages name the flag, the env var or the YAML key and say what was expected.
// They never quote a value: a token pasted into the wrong setting must not reach a terminal, a log or a CI transcript.
export * from './types.js';
export { SETTINGS, USAGE, wantsHelp } from './settings.js';
export type { SettingSpec } from './settings.js';
export type { YamlParser } from './file.js';
export { configFileNamed, loadConfig } from './load.js';
export type { LoadConfigOptions } from './load.js';
