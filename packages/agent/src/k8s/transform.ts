// Phase key → Kubernetes Secret data, byte for byte as Phase's operator builds it (phase-operator.md sections 4 and
// 13): the name transformers, the per-key processors and their precedence, and the collision rule.

/** The name transformers of Phase's operator; `upper_snake` (and an unset or unknown name) keeps the key as is. */
export const NAME_TRANSFORMERS = [
  'upper_snake',
  'camel',
  'upper-camel',
  'lower-snake',
  'tf-var',
  'lower-kebab',
] as const;
export type NameTransformer = (typeof NAME_TRANSFORMERS)[number];

/** `processors.<KEY>` of a managed secret reference. */
export interface KeyProcessor {
  /** The output key, verbatim; wins over every transformer. */
  readonly asName?: string | undefined;
  readonly nameTransformer?: string | undefined;
  /** `base64`: the value is already base64 and is decoded; anything else (the default `plain`) stores its bytes. */
  readonly type?: string | undefined;
}

/** What shapes one managed Secret's data. */
export interface DataSpec {
  readonly nameTransformer?: string | undefined;
  readonly processors?: Readonly<Record<string, KeyProcessor>> | undefined;
}

/** Python's `str.capitalize()` by code point: the first upper-cased, the rest lower-cased (v1's behaviour). */
function capitalize(word: string): string {
  const [first = '', ...rest] = [...word];
  return first.toUpperCase() + rest.join('').toLowerCase();
}

/**
 * Applies one of Phase's name transformers to a key; an unset or unknown transformer returns the key unchanged, as
 * Phase's operator does (it does not upper-case it).
 */
export function transformName(key: string, transformer: string | undefined): string {
  const words = () => key.toLowerCase().split('_');
  switch (transformer) {
    case 'camel': {
      const [first = '', ...rest] = words();
      return first + rest.map(capitalize).join('');
    }
    case 'upper-camel':
      return words().map(capitalize).join('');
    case 'lower-snake':
      return words().join('_');
    case 'tf-var':
      return `TF_VAR_${words().join('_')}`;
    case 'lower-kebab':
      return words().join('-');
    case undefined:
    default:
      return key;
  }
}

/** The output key of Phase key `key`: the processor's asName, else its transformer, else the reference's. */
export function outputKey(key: string, spec: DataSpec): string {
  const processor = spec.processors?.[key];
  if (processor?.asName !== undefined && processor.asName !== '') return processor.asName;
  return transformName(key, processor?.nameTransformer ?? spec.nameTransformer);
}

/** Kubernetes' rule for Secret data keys. */
const DATA_KEY = /^[-._a-zA-Z0-9]+$/;

/** Why a Phase key could not become Secret data; names the key, never the value. */
export class DataError extends Error {
  constructor(
    message: string,
    readonly key: string,
  ) {
    super(message);
    this.name = 'DataError';
  }
}

/** The Secret data and what had to be decided on the way. */
export interface BuiltData {
  readonly data: Record<string, Buffer>;
  /** Output keys that two Phase keys mapped to, with the Phase key that won (the alphabetically last). */
  readonly collisions: readonly {
    readonly output: string;
    readonly winner: string;
    readonly loser: string;
  }[];
}

const STRICT_BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

/**
 * Builds a managed Secret's data from decrypted secrets. Keys are taken in sorted order, so when two map to one
 * output key the alphabetically last wins (Phase's operator v2's rule); each collision is reported.
 *
 * @throws {DataError} a `base64` processor on a value that is not base64, or an output key Kubernetes refuses.
 */
export function buildSecretData(
  secrets: readonly { readonly key: string; readonly value: string }[],
  spec: DataSpec,
): BuiltData {
  const data: Record<string, Buffer> = {};
  const from = new Map<string, string>();
  const collisions: { output: string; winner: string; loser: string }[] = [];
  const sorted = [...secrets].sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  for (const { key, value } of sorted) {
    const output = outputKey(key, spec);
    if (!DATA_KEY.test(output) || output.length > 253) {
      throw new DataError(
        `key ${JSON.stringify(key)} becomes ${JSON.stringify(output)}, which is not a valid Secret data key ` +
          '(letters, digits, -, _ and . only)',
        key,
      );
    }
    let bytes: Buffer;
    if (spec.processors?.[key]?.type === 'base64') {
      const compact = value.replace(/\s+/g, '');
      if (!STRICT_BASE64.test(compact)) {
        throw new DataError(
          `processor for key ${JSON.stringify(key)} is type base64 but its value is not valid base64`,
          key,
        );
      }
      bytes = Buffer.from(compact, 'base64');
    } else {
      bytes = Buffer.from(value, 'utf8');
    }
    const previous = from.get(output);
    if (previous !== undefined) collisions.push({ output, winner: key, loser: previous });
    from.set(output, key);
    data[output] = bytes;
  }
  return { data, collisions };
}
