// Reading PhaseSecrets as Phase's operator does: the defaults of its CRD, the app and environment matching (exact
// first, a unique substring otherwise), and the partial tag match of phaseAppEnvTag.
import { describe, expect, it } from 'vitest';
import { matchByName, matchesTag, parseSpec } from '../../src/k8s/phasesecret.js';

describe('spec defaults, as Phase operator', () => {
  it('fills every default of the CRD and the code', () => {
    const parsed = parseSpec({ phaseApp: 'shop', managedSecretReferences: [{ secretName: 'env' }] }, 'team');
    expect(parsed).toEqual({
      ok: true,
      spec: {
        phaseApp: 'shop',
        phaseAppId: undefined,
        phaseAppEnv: 'production',
        phaseAppEnvPath: '/',
        phaseAppEnvTag: undefined,
        phaseHost: 'https://console.phase.dev',
        pollingIntervalS: 60,
        redeployLabelSelector: undefined,
        onSecretReferenceError: 'Fail',
        tokenSecret: { name: 'phase-service-token', namespace: 'team' },
        managedSecretReferences: [
          {
            secretName: 'env',
            secretNamespace: 'team',
            secretType: 'Opaque',
            nameTransformer: undefined,
            processors: {},
            labels: {},
            annotations: {},
          },
        ],
      },
    });
  });

  it('clamps pollingInterval to at least 5 s and reads onSecretReferenceError case-insensitively', () => {
    const parsed = parseSpec(
      {
        phaseAppId: 'id',
        pollingInterval: 1,
        onSecretReferenceError: 'warn',
        managedSecretReferences: [{ secretName: 'x' }],
      },
      'ns',
    );
    expect(parsed.ok && parsed.spec.pollingIntervalS).toBe(5);
    expect(parsed.ok && parsed.spec.onSecretReferenceError).toBe('Warn');
  });

  it('names what is missing', () => {
    expect(parseSpec({ managedSecretReferences: [] }, 'ns')).toEqual({
      ok: false,
      problems: [
        'spec.phaseApp or spec.phaseAppId is required',
        'spec.managedSecretReferences needs at least one entry',
      ],
    });
  });
});

describe('matching', () => {
  const apps = [{ name: 'shop' }, { name: 'shop-legacy' }, { name: 'Billing' }];

  it('an exact name (any case) wins over substrings', () => {
    expect(matchByName(apps, 'SHOP')).toEqual({ ok: true, value: { name: 'shop' }, bySubstring: false });
  });

  it('a unique substring is accepted and reported as such', () => {
    expect(matchByName(apps, 'bill')).toEqual({ ok: true, value: { name: 'Billing' }, bySubstring: true });
    expect(matchByName(apps, 'legacy')).toEqual({
      ok: true,
      value: { name: 'shop-legacy' },
      bySubstring: true,
    });
  });

  it('an ambiguous substring is an error naming the candidates; no match names none', () => {
    expect(matchByName(apps, 'hop')).toEqual({
      ok: false,
      reason: 'ambiguous',
      candidates: ['shop', 'shop-legacy'],
    });
    expect(matchByName(apps, 'nothing')).toEqual({ ok: false, reason: 'none', candidates: [] });
  });
});

describe('phaseAppEnvTag', () => {
  it('matches partially after lower-casing and reading _ as a space, as Phase does', () => {
    expect(matchesTag(['Production_DB'], 'prod')).toBe(true);
    expect(matchesTag(['Production_DB'], 'production db')).toBe(true);
    expect(matchesTag(['Production DB'], 'PRODUCTION_DB')).toBe(true);
    expect(matchesTag(['backend'], 'prod')).toBe(false);
    expect(matchesTag([], 'prod')).toBe(false);
  });
});
