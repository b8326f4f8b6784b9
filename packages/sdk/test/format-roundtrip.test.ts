// Property tests: every formatter's output reads back exactly through the real parser of its format, once
// written as UTF-8, or the formatter refuses with CONFIG in exactly the cases its rules name.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { parse as parseDotenv } from 'dotenv';
import fc from 'fast-check';
import { afterAll, describe, expect, it } from 'vitest';
import { isMap, isScalar, parseDocument } from 'yaml';

import { isPhaseError } from '../src/errors.js';
import { formatSecrets, type OutputFormat, type SecretEntry } from '../src/format.js';

const tmp = mkdtempSync(join(tmpdir(), 'phasekit-format-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

// ---- generators ----

const chars = (alphabet: string) => fc.constantFrom(...alphabet);
const TRICKY = [
  ...`'"\`$\\=:#! \t\f\n\rnruaZ_.-`,
  ...['\r\n', '\\n', '\\r', '\\u', '${A}', '$(x)', 'export ', '<<', '- ', ': ', '? '],
  ...'é☕😀\u00a0\u0085\u2028\u2029\ufeff\ufffe\u007f\u0001\u001b',
  ...['\0', '\ud800', '\udc00'], // NUL and halves of a surrogate pair (adjacent ones form a valid pair)
];
const trickyString = fc.string({ unit: fc.constantFrom(...TRICKY), maxLength: 12 });
// Few characters, so that combinations of quotes, backslashes and line breaks come up often.
const quoteHeavyString = fc.string({ unit: fc.constantFrom(...`'"\`\\ \n\r#nra`), maxLength: 8 });
const anyValue = fc.oneof(
  { arbitrary: trickyString, weight: 3 },
  { arbitrary: quoteHeavyString, weight: 2 },
  { arbitrary: fc.string(), weight: 1 },
  { arbitrary: fc.string({ unit: 'binary' }), weight: 1 },
  { arbitrary: fc.string({ unit: 'grapheme' }), weight: 1 },
);

const UPPER = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ';
const IDENT_START = `${UPPER}${UPPER.toLowerCase()}_`;
const envKey = fc
  .tuple(chars(IDENT_START), fc.string({ unit: chars(`${IDENT_START}0123456789`), maxLength: 8 }))
  .map(([first, rest]) => first + rest);
const dotenvKey = fc.oneof(
  envKey,
  fc
    .string({ unit: chars(`${IDENT_START}0123456789.-`), minLength: 1, maxLength: 8 })
    .filter((k) => !k.startsWith('fence.')),
  fc.constantFrom('__proto__', 'export', '', 'a b', 'é'), // the last three are not dotenv keys
);
// Keys that plain YAML would read as booleans, null, numbers, a merge key, a comment or other syntax.
const ODD_KEYS = [
  '__proto__',
  'yes',
  'No',
  'null',
  '~',
  '1',
  '10',
  '0x1F',
  '1e3',
  '<<',
  '',
  'a: b',
  '#x',
  '- x',
];
const anyKey = fc.oneof(anyValue, fc.constantFrom(...ODD_KEYS));

// dotenv's rules turn on which bare and escaped quotes, line breaks, `#` and edge blanks a value holds.
const DOTENV_PIECES = ["'", '"', '`', "\\'", '\\"', '\\`', '\\', '\\n', '\n', '\r', ' ', '#', 'a'];
const dotenvValue = fc.oneof(
  anyValue,
  fc.array(fc.constantFrom(...DOTENV_PIECES), { maxLength: 7 }).map((p) => p.join('')),
);

function entriesOf(key: fc.Arbitrary<string>, value = anyValue): fc.Arbitrary<SecretEntry[]> {
  return fc.uniqueArray(fc.record({ key, value }), { selector: (e) => e.key, maxLength: 6 });
}

// ---- helpers ----

/** What a reader of the written file sees: the text after a UTF-8 encode/decode. */
const viaUtf8 = (text: string) => Buffer.from(text, 'utf8');
const asMap = (entries: SecretEntry[]) => new Map(entries.map((e) => [e.key, e.value]));
const LONE_SURROGATE = /[\uD800-\uDFFF]/u;
const fitsInEnvironment = (value: string) => !value.includes('\0') && !LONE_SURROGATE.test(value);

/**
 * Formats, then hands the text to `check`; or, when the formatter refuses, asserts that it refused with
 * CONFIG and that `representable` agrees the entries cannot be written.
 */
function checkRoundTrip(
  entries: SecretEntry[],
  format: OutputFormat,
  representable: (entry: SecretEntry) => boolean,
  check: (text: string) => void,
): void {
  const expected = entries.every(representable);
  let text: string;
  try {
    text = formatSecrets(entries, format);
  } catch (error) {
    expect(isPhaseError(error, 'CONFIG'), String(error)).toBe(true);
    expect(expected, `refused representable entries: ${String(error)}`).toBe(false);
    return;
  }
  expect(expected, 'wrote entries the rules call unrepresentable').toBe(true);
  expect(text.endsWith('\n')).toBe(true);
  check(text);
}

// ---- dotenv ----

/** The formatter's dotenv rules, stated independently: which entries it must write and which refuse. */
function dotenvRulesAllow({ key, value }: SecretEntry): boolean {
  if (!/^[A-Za-z0-9_.-]+$/.test(key) || key === '__proto__' || !fitsInEnvironment(value)) return false;
  // A quote may sit inside quotes of its own kind only right after a backslash.
  const bareQuote = (q: string) => [...value].some((c, i) => c === q && value[i - 1] !== '\\');
  const quotable = !value.endsWith('\\');
  const single = quotable && !bareQuote("'") && !value.includes('\r');
  const double = quotable && !bareQuote('"') && !value.includes('\\n') && !value.includes('\\r');
  const backtick = quotable && !bareQuote('`') && !value.includes('\r');
  const bare = value !== '' && value.trim() === value && !/^['"`]|[#\n\r\u2028\u2029]/.test(value);
  return single || double || backtick || bare;
}

// Lines whose first ', " and ` each end a line: a value whose closing quote got escaped runs on into them.
const DOTENV_FENCE = 'fence.b=x\'\nfence.c=x"\nfence.d=x`\n';

/** Asks dotenv itself whether any of the formatter's four ways to write a value reads back exactly. */
function dotenvReadsBack({ key, value }: SecretEntry): boolean {
  const escaped = value.replace(/\n/g, '\\n').replace(/\r/g, '\\r');
  return [`'${value}'`, `"${escaped}"`, `\`${value}\``, value].some((written) =>
    [false, true].every((fast) => {
      const parsed = parseDotenv(viaUtf8(`fence.a=a\n${key}=${written}\n${DOTENV_FENCE}`), { fast });
      return Object.hasOwn(parsed, key) && parsed[key] === value && parsed['fence.d'] === 'x`';
    }),
  );
}

// ---- shell ----

/** Sources the file in `shell` and returns the exported environment, read exactly (NUL-separated). */
function sourceInShell(text: string, shell = '/bin/sh'): Map<string, string> {
  const file = join(tmp, 'secrets.sh');
  writeFileSync(file, text);
  // An empty environment, and `env` by absolute path, so a secret named PATH cannot change what runs.
  const flags = shell.endsWith('bash') ? ['--norc', '--noprofile'] : [];
  const result = spawnSync(shell, [...flags, '-c', '. "$1" && exec /usr/bin/env -0', 'sh', file], {
    env: {},
  });
  expect(result.stderr.toString(), 'shell stderr').toBe('');
  expect(result.status).toBe(0);
  const environment = new Map<string, string>();
  for (const line of result.stdout.toString('utf8').split('\0').slice(0, -1)) {
    const eq = line.indexOf('=');
    environment.set(line.slice(0, eq), line.slice(eq + 1));
  }
  return environment;
}

// ---- properties ----

/**
 * A faithful reading of java.util.Properties.load (JDK 17): logical lines joined at an odd number of trailing
 * backslashes, leading blanks (space, tab, form feed) skipped on every natural line, `#`/`!` comments, the
 * key ending at the first unescaped `=`, `:` or blank, and `\t \n \r \f \uXXXX` escapes (any other escaped char
 * stands for itself). Returns the entries in file order; a later duplicate wins.
 */
function parseProperties(text: string): Map<string, string> {
  const result = new Map<string, string>();
  for (const line of logicalLines(text)) {
    let keyEnd = 0;
    let valueStart = line.length;
    let hasSeparator = false;
    let escaped = false;
    for (; keyEnd < line.length; keyEnd++) {
      const c = line[keyEnd] as string;
      if (!escaped && (c === '=' || c === ':')) {
        valueStart = keyEnd + 1;
        hasSeparator = true;
        break;
      }
      if (!escaped && isBlank(c)) {
        valueStart = keyEnd + 1;
        break;
      }
      escaped = c === '\\' && !escaped;
    }
    for (; valueStart < line.length; valueStart++) {
      const c = line[valueStart] as string;
      if (isBlank(c)) continue;
      if (!hasSeparator && (c === '=' || c === ':')) hasSeparator = true;
      else break;
    }
    result.set(unescapeProperties(line.slice(0, keyEnd)), unescapeProperties(line.slice(valueStart)));
  }
  return result;
}

const isBlank = (c: string | undefined) => c === ' ' || c === '\t' || c === '\f';
const isEol = (c: string | undefined) => c === '\n' || c === '\r';

function logicalLines(text: string): string[] {
  const lines: string[] = [];
  let i = 0;
  while (i < text.length) {
    while (isBlank(text[i]) || isEol(text[i])) i++;
    if (i >= text.length) break;
    if (text[i] === '#' || text[i] === '!') {
      while (i < text.length && !isEol(text[i])) i++;
      continue;
    }
    let line = '';
    let backslashes = 0;
    while (i < text.length) {
      const c = text[i++] as string;
      if (!isEol(c)) {
        line += c;
        backslashes = c === '\\' ? backslashes + 1 : 0;
        continue;
      }
      if (c === '\r' && text[i] === '\n') i++;
      if (backslashes % 2 === 0) break;
      // Continuation: drop the backslash, skip the next line's leading blanks (a comment marker there is
      // data).
      line = line.slice(0, -1);
      backslashes = 0;
      while (isBlank(text[i])) i++;
    }
    if (backslashes % 2 === 1) line = line.slice(0, -1); // a backslash at end of file
    if (line !== '') lines.push(line);
  }
  return lines;
}

const PROPERTIES_ESCAPES: Readonly<Record<string, string>> = { t: '\t', n: '\n', r: '\r', f: '\f' };

function unescapeProperties(text: string): string {
  return text.replace(/\\(u(.{0,4})|[\s\S])/g, (_match, escape: string, hex: string | undefined) => {
    if (hex === undefined) return PROPERTIES_ESCAPES[escape] ?? escape;
    if (!/^[0-9a-fA-F]{4}$/.test(hex)) throw new Error('Malformed \\uxxxx encoding.');
    return String.fromCharCode(parseInt(hex, 16));
  });
}

// ---- round trips ----

describe('round trips through the real parsers', () => {
  it('dotenv: dotenv.parse (both parsers) reads back every value, or the rules refuse it', () => {
    fc.assert(
      fc.property(entriesOf(dotenvKey, dotenvValue), (entries) => {
        checkRoundTrip(entries, 'dotenv', dotenvRulesAllow, (text) => {
          // The fence after the output catches a closing quote that got escaped.
          const expected = new Map([
            ...asMap(entries),
            ['fence.b', "x'"],
            ['fence.c', 'x"'],
            ['fence.d', 'x`'],
          ]);
          for (const fast of [false, true]) {
            expect(new Map(Object.entries(parseDotenv(viaUtf8(text + DOTENV_FENCE), { fast })))).toEqual(
              expected,
            );
          }
        });
        // The refusals are real: dotenv reads none of the formatter's forms back. Checked for values with
        // `#`, which cannot take dotenv's unquoted route: other one-line texts wrapped in quotes can fall
        // through its quoted patterns to the unquoted one, which strips the quotes again (`': '"` reads as `:
        // '`), a parser accident the formatter does not rely on.
        for (const entry of entries) {
          if (!dotenvRulesAllow(entry) && fitsInEnvironment(entry.value) && entry.value.includes('#')) {
            expect(dotenvReadsBack(entry), JSON.stringify(entry)).toBe(false);
          }
        }
      }),
      { numRuns: 300 },
    );
  });

  it('shell: sourcing in sh exports every value exactly, or it holds NUL or a lone surrogate', () => {
    // dash refuses a non-numeric OPTIND; that is the shell's rule about one variable, not quoting.
    const shellKey = envKey.filter((key) => key !== 'OPTIND');
    fc.assert(
      fc.property(entriesOf(shellKey), (entries) => {
        checkRoundTrip(
          entries,
          'shell',
          (e) => fitsInEnvironment(e.value),
          (text) => {
            const environment = sourceInShell(text);
            for (const { key, value } of entries) expect(environment.get(key)).toBe(value);
          },
        );
      }),
      { numRuns: 200 },
    );
  });

  it('json: JSON.parse reads back every key and value', () => {
    fc.assert(
      fc.property(entriesOf(anyKey), (entries) => {
        checkRoundTrip(
          entries,
          'json',
          () => true,
          (text) => {
            const parsed = JSON.parse(viaUtf8(text).toString('utf8')) as Record<string, string>;
            expect(new Map(Object.entries(parsed))).toEqual(asMap(entries));
          },
        );
      }),
      { numRuns: 300 },
    );
  });

  it('yaml: the yaml package (YAML 1.2 and 1.1) reads back every key and value, in order', () => {
    fc.assert(
      fc.property(entriesOf(anyKey), (entries) => {
        checkRoundTrip(
          entries,
          'yaml',
          () => true,
          (text) => {
            for (const version of ['1.2', '1.1'] as const) {
              const doc = parseDocument(viaUtf8(text).toString('utf8'), { version });
              expect(doc.errors).toEqual([]);
              expect(doc.warnings).toEqual([]);
              if (!isMap(doc.contents)) throw new Error('expected a mapping');
              const keys = doc.contents.items.map((pair) => (isScalar(pair.key) ? pair.key.value : pair.key));
              expect(keys).toEqual(entries.map((e) => e.key));
              expect(new Map(Object.entries(doc.toJS() as object))).toEqual(asMap(entries));
            }
          },
        );
      }),
      { numRuns: 300 },
    );
  });

  it('properties: the Properties.load reference parser reads back every key and value, in order', () => {
    fc.assert(
      fc.property(entriesOf(anyKey), (entries) => {
        checkRoundTrip(
          entries,
          'properties',
          () => true,
          (text) => {
            // Pure ASCII, so Properties.load reads it the same from an ISO-8859-1 stream or a UTF-8 reader.
            expect(text).toMatch(/^[\x20-\x7e\n]*$/);
            expect([...parseProperties(text)]).toEqual(entries.map((e) => [e.key, e.value]));
          },
        );
      }),
      { numRuns: 300 },
    );
  });
});

// ---- fixed samples through programs other than the test's own parsers ----

const TRICKY_SAMPLE: SecretEntry[] = [
  { key: 'PLAIN', value: 'postgres://user:p@ss@host:5432/db?sslmode=require#x' },
  { key: 'QUOTES', value: `it's "quoted" \`tick\` $HOME $(id) \\ \\n \\\\` },
  { key: 'LINES', value: 'line 1\nline 2\r\nline 3\n\n' },
  { key: 'SPACES', value: '  \t leading and trailing \t ' },
  { key: 'UNICODE', value: 'café ☕ 😀 \u00a0\u2028\u0085\ufeff' },
  { key: 'TRAILING_BACKSLASH', value: 'C:\\dir\\' },
  { key: 'EMPTY', value: '' },
];

describe('fixed samples', () => {
  it.each(['/bin/sh', '/bin/bash'])('%s sources the shell output exactly', (shell) => {
    const environment = sourceInShell(formatSecrets(TRICKY_SAMPLE, 'shell'), shell);
    for (const { key, value } of TRICKY_SAMPLE) expect(environment.get(key)).toBe(value);
  });

  it('java.util.Properties reads the properties output, and agrees with the reference parser', () => {
    // Not skipped without Java: every machine of ours has a JDK, and a missing one must fail loudly.
    const propertiesSample: SecretEntry[] = [
      ...TRICKY_SAMPLE,
      { key: ' key with = : # ! spaces\t', value: ' =:#!\\\f\u0000\ud800' },
      { key: '', value: 'empty key' },
      { key: '#comment-like', value: '!also' },
    ];
    // Hand-written files that exercise Properties.load rules the formatter never produces.
    const handWritten = [
      '# comment\n! comment\n  a = 1  \nb:2\nc 3\nd\\\n   continued \\\\\\\n\t more\r\ne=\\u00e9\\tx\rf\n',
      '\\ g\\ h = \\ i\n   \n\\#j=1\nk=\\\n\nl = = :x\nm=\\z\\\\\n\fn\f=\fo\nm=last wins\np\\\r\n  #q\n',
    ];
    const texts = [formatSecrets(propertiesSample, 'properties'), ...handWritten];
    const files = texts.map((text, i) => {
      const file = join(tmp, `sample-${i}.properties`);
      writeFileSync(file, text, 'latin1');
      return file;
    });
    const program = join(tmp, 'PropertiesDump.java');
    writeFileSync(program, PROPERTIES_DUMP_JAVA);
    const java = spawnSync('java', [program, ...files], { encoding: 'utf8' });
    expect(java.error).toBeUndefined();
    expect(java.stderr).toBe('');
    expect(java.status).toBe(0);

    const fromJava = java.stdout.split('--\n').slice(0, -1).map(parseDump);
    expect(fromJava[0]).toEqual(asMap(propertiesSample));
    expect(fromJava).toEqual(texts.map(parseProperties));
  });
});

// Prints each file's entries as `hex(key) hex(value)` lines (UTF-16 code units), then `--`, so no console
// encoding can blur a character.
const PROPERTIES_DUMP_JAVA = `
import java.io.FileInputStream;
import java.util.Properties;

public class PropertiesDump {
  public static void main(String[] args) throws Exception {
    StringBuilder out = new StringBuilder();
    for (String path : args) {
      Properties properties = new Properties();
      try (FileInputStream in = new FileInputStream(path)) {
        properties.load(in);
      }
      for (String key : properties.stringPropertyNames()) {
        out.append(hex(key)).append(' ').append(hex(properties.getProperty(key))).append('\\n');
      }
      out.append("--\\n");
    }
    System.out.print(out);
  }

  static String hex(String s) {
    StringBuilder b = new StringBuilder("x");
    for (char c : s.toCharArray()) b.append(String.format("%04x", (int) c));
    return b.toString();
  }
}
`;

function parseDump(dump: string): Map<string, string> {
  const unhex = (h: string) =>
    String.fromCharCode(...(h.slice(1).match(/.{4}/g) ?? []).map((u) => parseInt(u, 16)));
  return new Map(
    dump
      .split('\n')
      .filter((line) => line !== '')
      .map((line) => line.split(' ').map(unhex) as [string, string]),
  );
}
