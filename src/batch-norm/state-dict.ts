import { StateDictError } from '../errors.js';

/** A module's state with PyTorch's `state_dict()` keys. Keys exist only where PyTorch has them. */
export interface StateDict {
  weight?: Float32Array;
  bias?: Float32Array;
  running_mean?: Float32Array;
  running_var?: Float32Array;
  /** PyTorch's int64 scalar buffer, as a number. */
  num_batches_tracked?: number;
}

/** What `loadStateDict` accepts: arrays of numbers or Float32Arrays, and a number or bigint counter. */
export interface StateDictInput {
  weight?: Float32Array | readonly number[];
  bias?: Float32Array | readonly number[];
  running_mean?: Float32Array | readonly number[];
  running_var?: Float32Array | readonly number[];
  num_batches_tracked?: number | bigint;
}

const VECTOR_KEYS = ['weight', 'bias', 'running_mean', 'running_var'] as const;

/** Validates a whole state dict against a module's configuration and returns float32 copies. */
export function checkStateDict(
  sd: StateDictInput,
  channels: number,
  affine: boolean,
  tracking: boolean,
  who: string,
): StateDict {
  if (sd === null || typeof sd !== 'object') {
    throw new StateDictError(`${who}.loadStateDict: expected an object with PyTorch state_dict keys, got ${String(sd)}`);
  }
  const expected = [...(affine ? ['weight', 'bias'] : []), ...(tracking ? ['running_mean', 'running_var', 'num_batches_tracked'] : [])];
  const given = Object.keys(sd);
  const missing = expected.filter((k) => !given.includes(k));
  const unexpected = given.filter((k) => !expected.includes(k));
  if (missing.length || unexpected.length) {
    throw new StateDictError(
      `${who}.loadStateDict: keys must be exactly [${expected.join(', ')}]` +
        (missing.length ? `; missing [${missing.join(', ')}]` : '') +
        (unexpected.length ? `; unexpected [${unexpected.join(', ')}]` : ''),
    );
  }
  const out: StateDict = {};
  for (const key of VECTOR_KEYS) {
    const v = sd[key];
    if (v === undefined) continue;
    if (!(v instanceof Float32Array) && !Array.isArray(v)) {
      throw new StateDictError(`${who}.loadStateDict: '${key}' must be a Float32Array or number[] of length ${channels}, got ${typeof v}`);
    }
    if (v.length !== channels) {
      throw new StateDictError(`${who}.loadStateDict: '${key}' must have length ${channels} (numFeatures), got ${v.length}`);
    }
    if (Array.isArray(v) && v.some((e) => typeof e !== 'number')) {
      throw new StateDictError(`${who}.loadStateDict: '${key}' contains a value that is not a number`);
    }
    out[key] = Float32Array.from(v);
  }
  const tracked = sd.num_batches_tracked;
  if (tracked !== undefined) {
    const n = typeof tracked === 'bigint' ? Number(tracked) : tracked;
    if (typeof n !== 'number' || !Number.isInteger(n) || n < 0 || n > 0xffffffff) {
      throw new StateDictError(`${who}.loadStateDict: 'num_batches_tracked' must be an integer in [0, 2^32), got ${String(tracked)}`);
    }
    out.num_batches_tracked = n;
  }
  return out;
}
