import { describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';

import { isPhaseError, type PhaseError } from './errors.js';
import {
  FORMAT_FILE_NAMES,
  formatSecrets,
  isOutputFormat,
  OUTPUT_FORMATS,
  type OutputFormat,
  type SecretEntry,
} from './format.js';

const SAMPLE: SecretEntry[] = [
  { key: 'DB_URL', value: 'postgres://u:p@h/db?x=1#frag' },
  { key: 'QUOTED', value: `it's "q" $HOME \\ ok` },
  { key: 'MULTI', value: 'line1\nline2' },
  { key: 'CRLF', value: "don't\r\n" },
  { key: 'EMPTY', value: '' },
  { key: 'UNI', value: ' café ☕😀' },
];

function errorOf(fn: () => unknown): PhaseError {
  try {
    fn();
  } catch (error) {
    if (isPhaseError(error)) return error;
    throw error;
  }
  throw new Error('expected a PhaseError');
}

describe('format names', () => {
  it('lists every format with its snapshot file name', () => {
    expect(OUTPUT_FORMATS).toEqual(['dotenv', 'json', 'yaml', 'shell', 'properties']);
    expect(FORMAT_FILE_NAMES).toEqual({
      dotenv: '.env',
      json: 'secrets.json',
      yaml: 'secrets.yaml',
      shell: 'secrets.sh',
      properties: 'secrets.properties',
    });
  });

  it('recognises format names exactly', () => {
    for (const format of OUTPUT_FORMATS) expect(isOutputFormat(format)).toBe(true);
    for (const other of ['', 'files', 'JSON', 'env', 'toString', '__proto__'])
      expect(isOutputFormat(other)).toBe(false);
  });
});

describe('formatSecrets output', () => {
  it('dotenv picks a quoting per value', () => {
    expect(formatSecrets(SAMPLE, 'dotenv')).toBe(
      [
        `DB_URL='postgres://u:p@h/db?x=1#frag'`,
        'QUOTED=`it\'s "q" $HOME \\ ok`',
        `MULTI='line1\nline2'`,
        `CRLF="don't\\r\\n"`,
        `EMPTY=''`,
        `UNI=' café ☕😀'`,
        '',
      ].join('\n'),
    );
  });

  it.each([
    ['plain', `a b#c $x \\n`, `'a b#c $x \\n'`],
    ['single quote', `it's`, `"it's"`],
    ['single quote and line break', `it's\nok`, `"it's\\nok"`],
    ['carriage return', `a\rb`, `"a\\rb"`],
    ['backslash before CR', `a\\\r`, `"a\\\\r"`],
    ['both quotes and a line break', `'"\nx`, '`\'"\nx`'],
    ['both quotes and a literal \\n', `'"\\n`, '`\'"\\n`'],
    ['trailing backslash', `C:\\dir\\`, `C:\\dir\\`],
    ['all quotes', `a'b"c\`d`, `a'b"c\`d`],
    ['an escaped single quote', `a\\'b\n`, `'a\\'b\n'`],
    ['escaped double quotes, a single quote and a CR', `{\\"it's\\"}\r`, `"{\\"it's\\"}\\r"`],
    ['escaped backticks and both other quotes', `'"\\\`\n`, '`\'"\\`\n`'],
  ])('dotenv writes a value with %s as %s', (_name, value, written) => {
    expect(formatSecrets([{ key: 'K', value }], 'dotenv')).toBe(`K=${written}\n`);
  });

  it('json is pretty-printed with 2 spaces', () => {
    expect(formatSecrets(SAMPLE, 'json')).toBe(
      [
        '{',
        '  "DB_URL": "postgres://u:p@h/db?x=1#frag",',
        '  "QUOTED": "it\'s \\"q\\" $HOME \\\\ ok",',
        '  "MULTI": "line1\\nline2",',
        '  "CRLF": "don\'t\\r\\n",',
        '  "EMPTY": "",',
        '  "UNI": " café ☕😀"',
        '}',
        '',
      ].join('\n'),
    );
  });

  it('json keeps input order, integer-like keys and __proto__', () => {
    const entries = [
      { key: 'b', value: '1' },
      { key: '10', value: '2' },
      { key: '__proto__', value: '3' },
      { key: '2', value: '4' },
    ];
    const text = formatSecrets(entries, 'json');
    expect(text).toBe('{\n  "b": "1",\n  "10": "2",\n  "__proto__": "3",\n  "2": "4"\n}\n');
    expect(Object.entries(JSON.parse(text) as object)).toEqual(
      expect.arrayContaining(entries.map((e) => [e.key, e.value])),
    );
  });

  it('yaml double-quotes keys and values', () => {
    expect(formatSecrets(SAMPLE, 'yaml')).toBe(
      [
        '"DB_URL": "postgres://u:p@h/db?x=1#frag"',
        '"QUOTED": "it\'s \\"q\\" $HOME \\\\ ok"',
        '"MULTI": "line1\\nline2"',
        '"CRLF": "don\'t\\r\\n"',
        '"EMPTY": ""',
        '"UNI": " café ☕😀"',
        '',
      ].join('\n'),
    );
  });

  it('yaml keeps keys that plain YAML would read as other types, and escapes YAML-special characters', () => {
    const keys = ['yes', 'null', '1', 'a: b', '#x', '<<', '~', '', '- x', '? y', 'true', '0x1F', '__proto__'];
    const entries = keys.map((key, i) => ({ key, value: String(i) }));
    for (const version of ['1.1', '1.2'] as const) {
      expect(Object.entries(parseYaml(formatSecrets(entries, 'yaml'), { version }) as object)).toEqual(
        expect.arrayContaining(entries.map((e) => [e.key, e.value])),
      );
    }
    const special = '\u0000\u007f\u0085\u2028\u2029\ufeff\ud800\ufffe\t';
    expect(formatSecrets([{ key: 'K', value: special }], 'yaml')).toBe(
      '"K": "\\u0000\\u007f\\u0085\\u2028\\u2029\\ufeff\\ud800\\ufffe\\t"\n',
    );
  });

  it('yaml writes a key longer than an implicit key may be in the explicit form', () => {
    const key = 'k'.repeat(1500);
    const text = formatSecrets([{ key, value: 'v' }], 'yaml');
    expect(text).toBe(`? "${key}"\n: "v"\n`);
    expect(parseYaml(text)).toEqual({ [key]: 'v' });
  });

  it('shell exports single-quoted values', () => {
    expect(formatSecrets(SAMPLE, 'shell')).toBe(
      [
        `export DB_URL='postgres://u:p@h/db?x=1#frag'`,
        `export QUOTED='it'\\''s "q" $HOME \\ ok'`,
        `export MULTI='line1\nline2'`,
        `export CRLF='don'\\''t\r\n'`,
        `export EMPTY=''`,
        `export UNI=' café ☕😀'`,
        '',
      ].join('\n'),
    );
  });

  it('properties escapes like java.util.Properties.store', () => {
    expect(formatSecrets(SAMPLE, 'properties')).toBe(
      [
        'DB_URL=postgres\\://u\\:p@h/db?x\\=1\\#frag',
        `QUOTED=it's "q" $HOME \\\\ ok`,
        'MULTI=line1\\nline2',
        `CRLF=don't\\r\\n`,
        'EMPTY=',
        'UNI=\\ caf\\u00E9 \\u2615\\uD83D\\uDE00',
        '',
      ].join('\n'),
    );
    expect(formatSecrets([{ key: ' a b=c:d#e!f\t', value: '! x \f' }], 'properties')).toBe(
      '\\ a\\ b\\=c\\:d\\#e\\!f\\t=\\! x \\f\n',
    );
  });

  it.each(OUTPUT_FORMATS)('%s renders an empty set validly, ending with a newline', (format) => {
    const text = formatSecrets([], format);
    expect(text).toBe(format === 'json' || format === 'yaml' ? '{}\n' : '\n');
    if (format === 'json') expect(JSON.parse(text)).toEqual({});
    if (format === 'yaml') expect(parseYaml(text)).toEqual({});
  });

  it.each(OUTPUT_FORMATS)('%s ends every output with a newline', (format) => {
    expect(formatSecrets(SAMPLE, format).endsWith('\n')).toBe(true);
  });
});

describe('formatSecrets errors', () => {
  // Plant a distinctive value: no message may ever carry it.
  const CANARY = 'CANARY-s3cr3t-9f1c';

  function expectConfigError(entries: SecretEntry[], format: OutputFormat, key: string): PhaseError {
    const error = errorOf(() => formatSecrets(entries, format));
    expect(error.code).toBe('CONFIG');
    expect(error.message).toContain(JSON.stringify(key));
    expect(error.message).toContain(format);
    expect(error.message).not.toContain(CANARY);
    return error;
  }

  it.each(OUTPUT_FORMATS)('%s refuses a duplicate key', (format) => {
    const entries = [
      { key: 'DUP', value: `${CANARY}1` },
      { key: 'DUP', value: `${CANARY}2` },
    ];
    expect(expectConfigError(entries, format, 'DUP').message).toBe(`Duplicate key "DUP" in ${format} output`);
  });

  it('refuses an unknown format', () => {
    const error = errorOf(() => formatSecrets([], 'toml' as OutputFormat));
    expect(error.code).toBe('CONFIG');
    expect(error.message).toBe('Unknown output format "toml"');
  });

  it.each([
    ['dotenv', 'NUL', `${CANARY}\0`],
    ['shell', 'NUL', `${CANARY}\0`],
    ['dotenv', 'lone surrogate', `${CANARY}\ud800`],
    ['shell', 'lone surrogate', `\udc00${CANARY}`],
    ['dotenv', 'every quote and a line break', `'"\`\n${CANARY}`],
    ['dotenv', 'a trailing backslash after a line break', `${CANARY}\n\\`],
    ['dotenv', 'a trailing backslash after leading space', ` ${CANARY}\\`],
    ['dotenv', 'a CR, a double quote and a trailing backslash', `${CANARY}\r"\\`],
    ['dotenv', 'every quote and a trailing blank', `a'"\`${CANARY} `],
  ] as const)('%s refuses a value with %s, naming the key but not the value', (format, _name, value) => {
    expectConfigError(
      [
        { key: 'GOOD', value: 'ok' },
        { key: 'SECRET_KEY', value },
      ],
      format,
      'SECRET_KEY',
    );
  });

  it.each([
    ['dotenv', 'has space'],
    ['dotenv', ''],
    ['dotenv', 'a=b'],
    ['dotenv', 'é'],
    ['dotenv', '__proto__'],
    ['shell', '1ABC'],
    ['shell', 'A-B'],
    ['shell', 'A.B'],
    ['shell', ''],
    ['shell', 'É'],
  ] as const)('%s refuses the key %j', (format, key) => {
    expectConfigError([{ key, value: CANARY }], format, key);
  });

  it.each([
    ['json', ''],
    ['yaml', ''],
    ['properties', ''],
    ['dotenv', 'a.b-c'],
    ['dotenv', '1ABC'],
    ['shell', '_a1'],
  ] as const)('%s accepts the key %j', (format, key) => {
    expect(() => formatSecrets([{ key, value: 'v' }], format)).not.toThrow();
  });

  it.each(['json', 'yaml', 'properties'] as const)('%s represents NUL and lone surrogates', (format) => {
    expect(() => formatSecrets([{ key: '\0\ud800', value: '\0\udfff' }], format)).not.toThrow();
  });
});
