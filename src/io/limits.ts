/**
 * Read limits shared by the model-file readers. Model files come from strangers, so every byte a
 * reader inflates or allocates, and every tensor or pickle value it creates, is counted against a
 * budget and refused (ModelFileError LIMIT) before the allocation, never after.
 */
import { ArgumentError, ModelFileError } from '../errors.js';

/** Limits of every model-file reader; each one is named in the LIMIT error that it causes. */
export interface ReadLimits {
  /**
   * The most bytes one read may inflate and allocate: decompressed zip entries plus the decoded
   * tensors (float32 / int arrays, gathered strided views), summed. Declared sizes are checked
   * before inflating or allocating, and inflation stops as soon as an entry exceeds its declared
   * size. Stored (uncompressed) entries of the file itself are viewed, not copied, and cost nothing.
   * Default {@link DEFAULT_MAX_BYTES} (2 GiB).
   */
  maxBytes?: number;
  /**
   * The most bytes a `.pt` file's pickle (`data.pkl`, after inflating) may have. A state dict's
   * pickle is a few bytes per tensor (tens of KB for a ResNet), so a larger one is refused before
   * it is inflated. Default {@link DEFAULT_MAX_PICKLE_BYTES} (64 MiB).
   */
  maxPickleBytes?: number;
  /**
   * The most tensors a file may name (safetensors entries, ONNX initializers, state-dict keys, a
   * shared sub-dict counted once per path that reaches it). The values a pickle builds are charged
   * to `maxBytes` instead. Default {@link DEFAULT_MAX_ENTRIES} (1,000,000).
   */
  maxEntries?: number;
}

/** Default {@link ReadLimits.maxBytes}: 2 GiB. */
export const DEFAULT_MAX_BYTES = 2 ** 31;
/** Default {@link ReadLimits.maxPickleBytes}: 64 MiB. */
export const DEFAULT_MAX_PICKLE_BYTES = 64 * 2 ** 20;
/** Default {@link ReadLimits.maxEntries}: one million. */
export const DEFAULT_MAX_ENTRIES = 1_000_000;
/** Deepest container nesting a pickle may have: Python's default recursion limit, beyond which torch.save itself fails. */
export const MAX_DEPTH = 1000;

/** The limits with defaults filled in and checked. */
export interface Limits {
  readonly maxBytes: number;
  readonly maxPickleBytes: number;
  readonly maxEntries: number;
}

function limit(value: number | undefined, fallback: number, name: string): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !(value >= 0) || !Number.isSafeInteger(value)) {
    throw new ArgumentError(`${name} must be a non-negative safe integer, got ${String(value)}`);
  }
  return value;
}

/** `options`' limits with the defaults for those not given. */
export function resolveLimits(options: ReadLimits = {}): Limits {
  return {
    maxBytes: limit(options.maxBytes, DEFAULT_MAX_BYTES, 'maxBytes'),
    maxPickleBytes: limit(options.maxPickleBytes, DEFAULT_MAX_PICKLE_BYTES, 'maxPickleBytes'),
    maxEntries: limit(options.maxEntries, DEFAULT_MAX_ENTRIES, 'maxEntries'),
  };
}

const mib = (n: number): string => (n >= 2 ** 20 ? `${(n / 2 ** 20).toFixed(1)} MiB` : `${n} bytes`);

/** Counts the bytes one read allocates against `maxBytes`. */
export class ByteBudget {
  private used = 0;
  constructor(
    readonly maxBytes: number,
    private readonly where: string,
  ) {}

  /** Charges `bytes` (what is about to be allocated for `what`), or throws LIMIT before it is. */
  charge(bytes: number, what: string): void {
    if (!(bytes >= 0) || this.used + bytes > this.maxBytes) {
      throw new ModelFileError(
        'LIMIT',
        `${this.where}: ${what} needs ${mib(bytes)}, which with the ${mib(this.used)} already allocated exceeds the maxBytes limit of ${mib(this.maxBytes)}; pass a larger { maxBytes } to read it`,
      );
    }
    this.used += bytes;
  }
}

/** Refuses a count above `maxEntries`. */
export function checkEntries(count: number | bigint, maxEntries: number, where: string, what: string): void {
  if (count > maxEntries) {
    throw new ModelFileError(
      'LIMIT',
      `${where}: ${what} (${String(count)}) exceeds the maxEntries limit of ${maxEntries}; pass a larger { maxEntries } to read it`,
    );
  }
}

/**
 * Checks a tensor shape (non-negative safe integers) and returns its element count, or throws
 * BAD_SHAPE. Counts past 2^53 are refused as LIMIT by the caller's byte budget, never wrapped.
 */
export function checkedCount(shape: readonly unknown[], where: string): number {
  let count = 1;
  for (const d of shape) {
    if (typeof d !== 'number' || !Number.isSafeInteger(d) || d < 0) {
      throw new ModelFileError(
        'BAD_SHAPE',
        `${where}: shape [${shape.map(String).join(', ')}] has a dimension that is not a non-negative integer`,
      );
    }
    count *= d;
  }
  if (!Number.isSafeInteger(count)) {
    throw new ModelFileError('LIMIT', `${where}: shape [${shape.join(', ')}] has more than 2^53 elements; no maxBytes can hold it`);
  }
  return count;
}
