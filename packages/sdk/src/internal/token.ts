import { ErrorCode, PhaseError } from '../errors.js';
import { fromHex } from './crypto.js';

/** Bearer type word for each token kind (phase-protocol.md 2.2). */
export type TokenType = 'User' | 'Service' | 'ServiceAccount';

/** A parsed token. Holds key material, so it is never logged, printed or serialised. */
export interface ParsedToken {
  readonly type: TokenType;
  /** The bearer secret. */
  readonly tokenValue: string;
  readonly publicKey: Uint8Array;
  readonly shareA: Uint8Array;
  readonly wrapKey: Uint8Array;
}

const TOKEN_RE =
  /^(pss_user:v1|pss_service:v1|pss_service:v2):([0-9a-fA-F]{64}):([0-9a-fA-F]{64}):([0-9a-fA-F]{64}):([0-9a-fA-F]{64})$/;

const TYPES: Readonly<Record<string, TokenType>> = {
  'pss_user:v1': 'User',
  'pss_service:v1': 'Service',
  'pss_service:v2': 'ServiceAccount',
};

/**
 * Parses a `pss_service:v1`, `pss_service:v2` or `pss_user:v1` token. Other versions are refused rather
 * than guessed at (the official clients disagree on v3+). The error never quotes the input.
 */
export function parseToken(token: unknown): ParsedToken {
  if (typeof token !== 'string' || token.length === 0) {
    throw new PhaseError(
      ErrorCode.INVALID_TOKEN,
      'no Phase token given (set PHASE_SERVICE_TOKEN or pass `token`)',
    );
  }
  const match = TOKEN_RE.exec(token.trim());
  if (!match) {
    throw new PhaseError(
      ErrorCode.INVALID_TOKEN,
      'the Phase token is malformed: expected pss_service:v1, pss_service:v2 or pss_user:v1 followed by four 64-character hex fields',
    );
  }
  const [, prefix, tokenValue, publicKey, shareA, wrapKey] = match as unknown as [
    string,
    string,
    string,
    string,
    string,
    string,
  ];
  return {
    type: TYPES[prefix]!,
    tokenValue,
    publicKey: fromHex(publicKey, 'token public key'),
    shareA: fromHex(shareA, 'token key share'),
    wrapKey: fromHex(wrapKey, 'token wrap key'),
  };
}
