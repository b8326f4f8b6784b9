// The key transforms and processors give the bytes Phase's operator gives: the golden outputs of
// ../shared/docs/phase-operator.md section 13 (obtained by running Phase's own v1 and v2 code) and section 4.
import { describe, expect, it } from 'vitest';
import { DataError, buildSecretData, outputKey, transformName } from '../../src/k8s/transform.js';

// key → [camel, upper-camel, lower-snake, tf-var, lower-kebab, identity]
const GOLDEN: [string, string[]][] = [
  ['a', ['a', 'A', 'a', 'TF_VAR_a', 'a', 'a']],
  ['ABC', ['abc', 'Abc', 'abc', 'TF_VAR_abc', 'abc', 'ABC']],
  ['X_1', ['x1', 'X1', 'x_1', 'TF_VAR_x_1', 'x-1', 'X_1']],
  ['__DOUBLE', ['Double', 'Double', '__double', 'TF_VAR___double', '--double', '__DOUBLE']],
  ['TRAILING_', ['trailing', 'Trailing', 'trailing_', 'TF_VAR_trailing_', 'trailing-', 'TRAILING_']],
  [
    'MixedCase_Key',
    [
      'mixedcaseKey',
      'MixedcaseKey',
      'mixedcase_key',
      'TF_VAR_mixedcase_key',
      'mixedcase-key',
      'MixedCase_Key',
    ],
  ],
  ['with-dash', ['with-dash', 'With-dash', 'with-dash', 'TF_VAR_with-dash', 'with-dash', 'with-dash']],
  ['with.dot', ['with.dot', 'With.dot', 'with.dot', 'TF_VAR_with.dot', 'with.dot', 'with.dot']],
  [
    'ÜNICODE_KEY',
    ['ünicodeKey', 'ÜnicodeKey', 'ünicode_key', 'TF_VAR_ünicode_key', 'ünicode-key', 'ÜNICODE_KEY'],
  ],
  // Section 4's examples.
  ['SECRET_KEY', ['secretKey', 'SecretKey', 'secret_key', 'TF_VAR_secret_key', 'secret-key', 'SECRET_KEY']],
  [
    'DB__USER_NAME',
    ['dbUserName', 'DbUserName', 'db__user_name', 'TF_VAR_db__user_name', 'db--user-name', 'DB__USER_NAME'],
  ],
];
const COLUMNS = ['camel', 'upper-camel', 'lower-snake', 'tf-var', 'lower-kebab'] as const;

describe('name transformers match Phase operator golden outputs', () => {
  for (const [key, expected] of GOLDEN) {
    it(`transforms ${key}`, () => {
      COLUMNS.forEach((transformer, i) =>
        expect(transformName(key, transformer), transformer).toBe(expected[i]),
      );
      for (const identity of [undefined, 'upper_snake', 'dotnet-env', 'UPPER-CAMEL', 'bogus']) {
        expect(transformName(key, identity), String(identity)).toBe(expected[5]);
      }
    });
  }

  it('capitalises by code point, as v1 does (v2 breaks UTF-8 here)', () => {
    expect(transformName('KEY_ÜBER', 'camel')).toBe('keyÜber');
  });

  it('section 4 examples', () => {
    expect(transformName('A_B_C', 'camel')).toBe('aBC');
    expect(transformName('API_V2_ENDPOINT', 'camel')).toBe('apiV2Endpoint');
    expect(transformName('REDIS_DB_0_HOST', 'upper-camel')).toBe('RedisDb0Host');
    expect(transformName('SECRET_KEY_', 'camel')).toBe('secretKey');
    expect(transformName('_SECRET_KEY', 'camel')).toBe('SecretKey');
    expect(transformName('Mixed_Case_Key', 'camel')).toBe('mixedCaseKey');
    expect(transformName('my.key', 'camel')).toBe('my.key');
  });
});

describe('processor precedence', () => {
  const spec = {
    nameTransformer: 'lower-kebab',
    processors: {
      AS_NAME: { asName: 'Verbatim_Name', nameTransformer: 'camel' },
      OWN_TRANSFORMER: { nameTransformer: 'upper-camel' },
      ONLY_TYPE: { type: 'plain' },
    },
  };

  it('asName wins, then the processor transformer, then the reference transformer, then the identity', () => {
    expect(outputKey('AS_NAME', spec)).toBe('Verbatim_Name');
    expect(outputKey('OWN_TRANSFORMER', spec)).toBe('OwnTransformer');
    expect(outputKey('ONLY_TYPE', spec)).toBe('only-type');
    expect(outputKey('UNLISTED_KEY', spec)).toBe('unlisted-key');
    expect(outputKey('UNLISTED_KEY', {})).toBe('UNLISTED_KEY');
  });

  it('matches processor keys exactly and case-sensitively', () => {
    expect(outputKey('as_name', spec)).toBe('as-name');
  });
});

describe('secret data', () => {
  it('stores plain values as their UTF-8 bytes and decodes base64 processors', () => {
    const { data } = buildSecretData(
      [
        { key: 'PLAIN', value: 'héllo' },
        { key: 'CERT', value: Buffer.from('binary\x00bytes').toString('base64') },
        { key: 'CASED', value: 'aGk=' },
      ],
      { processors: { CERT: { type: 'base64' }, CASED: { type: 'Base64' } } },
    );
    expect(data['PLAIN']).toEqual(Buffer.from('héllo', 'utf8'));
    expect(data['CERT']).toEqual(Buffer.from('binary\x00bytes'));
    // Only `base64` exactly decodes; `Base64` is plain, as in Phase's operator.
    expect(data['CASED']).toEqual(Buffer.from('aGk=', 'utf8'));
  });

  it('refuses a base64 processor on a value that is not base64, naming the key and not the value', () => {
    const build = () =>
      buildSecretData([{ key: 'CERT', value: 'not base64 at all!' }], {
        processors: { CERT: { type: 'base64' } },
      });
    expect(build).toThrow(DataError);
    expect(build).toThrow(/processor for key "CERT" is type base64/);
    expect(build).not.toThrow(/not base64 at all/);
  });

  it('on a collision the alphabetically last Phase key wins, and the collision is reported', () => {
    const { data, collisions } = buildSecretData(
      [
        { key: 'DB_URL', value: 'second' },
        { key: 'DB__URL', value: 'third' },
        { key: 'DB_url', value: 'first' },
      ],
      { nameTransformer: 'lower-snake' },
    );
    // Sorted: DB_URL, DB__URL, DB_url → db_url, db__url, db_url.
    expect(data['db_url']).toEqual(Buffer.from('first'));
    expect(collisions).toEqual([{ output: 'db_url', winner: 'DB_url', loser: 'DB_URL' }]);
  });

  it('refuses an output key Kubernetes would reject, naming it', () => {
    expect(() => buildSecretData([{ key: 'ÜNICODE', value: 'x' }], {})).toThrow(
      /"ÜNICODE".*not a valid Secret data key/,
    );
  });
});
