import { ErrorCode, PhaseError } from './errors.js';

/** A rendered output format for a set of secrets. */
export type OutputFormat = 'dotenv' | 'json' | 'yaml' | 'shell' | 'properties';

/** Every {@link OutputFormat}, in the order the docs list them. */
export const OUTPUT_FORMATS: readonly OutputFormat[] = Object.freeze([
  'dotenv',
  'json',
  'yaml',
  'shell',
  'properties',
]);

/** File name each format gets in the agent's snapshot directory. */
export const FORMAT_FILE_NAMES: Readonly<Record<OutputFormat, string>> = Object.freeze({
  dotenv: '.env',
  json: 'secrets.json',
  yaml: 'secrets.yaml',
  shell: 'secrets.sh',
  properties: 'secrets.properties',
});

/** One secret to render: its key and its plaintext value. */
export interface SecretEntry {
  readonly key: string;
  readonly value: string;
}

/** True when `value` names an {@link OutputFormat}. */
export function isOutputFormat(value: string): value is OutputFormat {
  return (OUTPUT_FORMATS as readonly string[]).includes(value);
}

/**
 * Renders secrets as the text of one format, keys in input order, ending with a newline (even when empty).
 * Every key and value reads back exactly through the format's parser (the `dotenv` package, `JSON.parse`, the
 * `yaml` package as YAML 1.2 or 1.1, a POSIX shell's `.`, `java.util.Properties.load`) once written as UTF-8.
 *
 * @throws {PhaseError} `CONFIG` for an unknown format, a duplicate key, or a key or value the format cannot
 *   represent exactly. The message names the key and the format, never the value.
 *   - dotenv: keys must match `[A-Za-z0-9_.-]+` and not be `__proto__`; values must not hold NUL or lone
 *     surrogates, nor mix quotes, backslashes and line breaks so that no dotenv quoting keeps them.
 *   - shell: keys must match `[A-Za-z_][A-Za-z0-9_]*`; values must not hold NUL or lone surrogates.
 *   - json, yaml, properties: everything is representable.
 *
 * @example
 * formatSecrets([{ key: 'DB_URL', value: "it's" }], 'shell'); // "export DB_URL='it'\\''s'\n"
 */
export function formatSecrets(entries: ReadonlyArray<SecretEntry>, format: OutputFormat): string {
  if (!isOutputFormat(format)) {
    throw new PhaseError(ErrorCode.CONFIG, `Unknown output format ${JSON.stringify(format)}`);
  }
  const seen = new Set<string>();
  for (const { key } of entries) {
    if (seen.has(key)) {
      throw new PhaseError(ErrorCode.CONFIG, `Duplicate key ${JSON.stringify(key)} in ${format} output`);
    }
    seen.add(key);
  }
  switch (format) {
    case 'dotenv':
      return lines(entries, (e) => `${dotenvKey(e.key)}=${dotenvValue(e)}`);
    case 'shell':
      return lines(entries, (e) => `export ${shellKey(e.key)}=${shellQuote(e)}`);
    case 'properties':
      return lines(entries, (e) => `${propertiesEscape(e.key, true)}=${propertiesEscape(e.value, false)}`);
    case 'json': {
      // Built by hand rather than from an object, which would move integer-like keys first and swallow
      // `__proto__`.
      const members = entries.map((e) => `  ${JSON.stringify(e.key)}: ${JSON.stringify(e.value)}`);
      return members.length === 0 ? '{}\n' : `{\n${members.join(',\n')}\n}\n`;
    }
    case 'yaml':
      // An empty YAML document parses as null, not as an empty mapping.
      return entries.length === 0 ? '{}\n' : lines(entries, yamlPair);
  }
}

// Line formats put one entry per line. An empty set still renders a (blank) line, so every output ends in
// `\n`.
function lines(entries: ReadonlyArray<SecretEntry>, render: (entry: SecretEntry) => string): string {
  return entries.length === 0 ? '\n' : entries.map((e) => `${render(e)}\n`).join('');
}

function unrepresentable(key: string, format: OutputFormat, why: string): PhaseError {
  return new PhaseError(
    ErrorCode.CONFIG,
    `Cannot write key ${JSON.stringify(key)} in ${format} format: ${why}`,
  );
}

// Text files are written as UTF-8, which has no encoding for a lone surrogate; formats without an escape for
// one (dotenv, shell) would silently turn it into U+FFFD. With the `u` flag a valid surrogate pair is one
// code point and does not match.
const LONE_SURROGATE = /[\uD800-\uDFFF]/u;

function checkEnvValue({ key, value }: SecretEntry, format: OutputFormat): void {
  // Environment variables are C strings: a NUL would cut the value short.
  if (value.includes('\0')) throw unrepresentable(key, format, 'the value contains a NUL character');
  if (LONE_SURROGATE.test(value)) throw unrepresentable(key, format, 'the value is not well-formed Unicode');
}

// ---- dotenv ----
// Written for the `dotenv` package's parser (and its `fast` parser). It reads a key as `[\w.-]+`; a quoted
// value verbatim, except that in double quotes `\n` and `\r` become line breaks; and it first turns every CR
// or CRLF in the file into LF. There is no escape for a backslash, and a quote inside quotes of its kind only
// survives right after a backslash (`\'` stays `\'`), so the quoting is chosen per value.

function dotenvKey(key: string): string {
  if (!/^[\w.-]+$/.test(key)) throw unrepresentable(key, 'dotenv', 'dotenv keys must match [A-Za-z0-9_.-]+');
  // dotenv builds its result with `result[key] = value`, which drops `__proto__`.
  if (key === '__proto__') throw unrepresentable(key, 'dotenv', 'dotenv parsers drop this key');
  return key;
}

function dotenvValue(entry: SecretEntry): string {
  checkEnvValue(entry, 'dotenv');
  const { value } = entry;
  // Inside any quotes a trailing backslash would escape the closing quote and swallow the lines after it.
  if (!value.endsWith('\\')) {
    if (!/(?<!\\)'|\r/.test(value)) return `'${value}'`;
    // Double quotes are the only way to write a CR; a literal `\n` or `\r` in the value would be expanded
    // there.
    if (!/(?<!\\)"|\\[nr]/.test(value)) return `"${value.replace(/\n/g, '\\n').replace(/\r/g, '\\r')}"`;
    if (!/(?<!\\)`|\r/.test(value)) return `\`${value}\``;
  }
  // Unquoted values are trimmed, end at `#` or a line break, and lose surrounding quotes. The parser's
  // multiline regexes also treat U+2028 and U+2029 as line ends.
  if (value !== '' && !/^[\s'"`]|\s$|[#\n\r\u2028\u2029]/.test(value)) return value;
  throw unrepresentable(
    entry.key,
    'dotenv',
    'no dotenv quoting keeps its mix of quotes, backslashes and line breaks exactly; use json or yaml',
  );
}

// ---- shell ----
// POSIX single quotes keep every byte literally; only `'` itself needs the close-escape-reopen dance.

function shellKey(key: string): string {
  if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(key)) {
    throw unrepresentable(key, 'shell', 'shell variable names must match [A-Za-z_][A-Za-z0-9_]*');
  }
  return key;
}

function shellQuote(entry: SecretEntry): string {
  checkEnvValue(entry, 'shell');
  return `'${entry.value.replace(/'/g, `'\\''`)}'`;
}

// ---- yaml ----
// Keys and values are double-quoted scalars, so no key reads as a boolean, null, number, merge key or
// comment. A JSON string is a valid YAML double-quoted scalar; on top of JSON's escapes we escape what YAML
// forbids or some parsers treat specially: DEL and C1 controls (U+0085 is a line break in YAML 1.1),
// U+2028/U+2029 (line breaks in 1.1), U+FEFF (a byte order mark) and the non-characters U+FFFE/U+FFFF.
// JSON.stringify escapes lone surrogates.

function yamlString(text: string): string {
  return JSON.stringify(text).replace(
    /[\u007f-\u009f\u2028\u2029\ufeff\ufffe\uffff]/g,
    (c) => `\\u${hex4(c)}`,
  );
}

function yamlPair({ key, value }: SecretEntry): string {
  const quotedKey = yamlString(key);
  // An implicit key may be at most 1024 characters long; longer keys need the explicit `? key` form.
  return quotedKey.length <= 1000
    ? `${quotedKey}: ${yamlString(value)}`
    : `? ${quotedKey}\n: ${yamlString(value)}`;
}

// ---- properties ----
// The escaping of java.util.Properties.store: `\` and the separators/comment markers `=`, `:`, `#`, `!` are
// backslash-escaped, spaces in keys (a space ends the key) and a leading space in values (it would be
// skipped), and everything outside printable ASCII becomes `\uXXXX`, so the file is the same in ISO-8859-1
// and UTF-8.

const PROPERTIES_CONTROL: Readonly<Record<string, string>> = {
  '\t': '\\t',
  '\n': '\\n',
  '\r': '\\r',
  '\f': '\\f',
};

function propertiesEscape(text: string, isKey: boolean): string {
  return text.replace(/[\\=:#! ]|[^\x20-\x7e]/g, (c, offset: number) => {
    if (c === ' ') return isKey || offset === 0 ? '\\ ' : ' ';
    if (c.charCodeAt(0) >= 0x20 && c.charCodeAt(0) <= 0x7e) return `\\${c}`;
    return PROPERTIES_CONTROL[c] ?? `\\u${hex4(c).toUpperCase()}`;
  });
}

/** The UTF-16 code unit of a one-unit string as four hex digits. */
function hex4(c: string): string {
  return c.charCodeAt(0).toString(16).padStart(4, '0');
}
