import { StateDictError } from '../errors.js';
import type { StateNames } from './config/conventions.js';

/**
 * A module's state. With the default PyTorch convention the keys are PyTorch's `state_dict()` keys,
 * present only where PyTorch has them; other conventions use their framework's names (Keras
 * `gamma`, `beta`, `moving_mean`, `moving_variance`, ...), which the index signature covers.
 */
export interface StateDict {
  weight?: Float32Array;
  bias?: Float32Array;
  running_mean?: Float32Array;
  running_var?: Float32Array;
  /** PyTorch's int64 scalar buffer, as a number. */
  num_batches_tracked?: number;
  [key: string]: Float32Array | number | undefined;
}

/** What `loadStateDict` accepts: arrays of numbers or Float32Arrays, and a number or bigint counter. */
export interface StateDictInput {
  weight?: Float32Array | readonly number[];
  bias?: Float32Array | readonly number[];
  running_mean?: Float32Array | readonly number[];
  running_var?: Float32Array | readonly number[];
  num_batches_tracked?: number | bigint;
  [key: string]: Float32Array | readonly number[] | number | bigint | undefined;
}

/** A checked state dict, by role rather than by name. */
export interface CheckedState {
  weight?: Float32Array;
  bias?: Float32Array;
  running_mean?: Float32Array;
  running_var?: Float32Array;
  num_batches_tracked?: number;
}

/** Which parts a module has. */
export interface StateParts {
  readonly weight: boolean;
  readonly bias: boolean;
  readonly running: boolean;
}

/** Validates a whole state dict against a module's configuration and names; returns float32 copies by role. */
export function checkStateDict(sd: StateDictInput, channels: number, names: StateNames, parts: StateParts, who: string): CheckedState {
  if (sd === null || typeof sd !== 'object') {
    throw new StateDictError(
      `${who}.loadStateDict: expected an object with keys [${expectedKeys(names, parts).join(', ')}], got ${String(sd)}`,
    );
  }
  const expected = expectedKeys(names, parts);
  checkNotModelFile(sd, who);
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
  const out: CheckedState = {};
  const roles = [
    ['weight', names.weight],
    ['bias', names.bias],
    ['running_mean', names.runningMean],
    ['running_var', names.runningVar],
  ] as const;
  for (const [role, key] of roles) {
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
    out[role] = Float32Array.from(v as ArrayLike<number>);
  }
  const tracked = names.tracked === null ? undefined : sd[names.tracked];
  if (tracked !== undefined) {
    const n = typeof tracked === 'bigint' ? Number(tracked) : tracked;
    if (typeof n !== 'number' || !Number.isInteger(n) || n < 0 || n > 0xffffffff) {
      throw new StateDictError(`${who}.loadStateDict: 'num_batches_tracked' must be an integer in [0, 2^32), got ${String(tracked)}`);
    }
    out.num_batches_tracked = n;
  }
  return out;
}

/** How to load a model file's tensors into a module: said whenever a state dict looks like one. */
const LOAD_FROM_FILE_HINT =
  "to load layers from a model file use loadBatchNorm(bn, file, 'layer.name') with the ModelFile from readModelFile/parseModelFile";

/**
 * A model file's tensor map (a Map of name → FileTensor), the ModelFile itself, or an object of
 * FileTensors is not a state dict; without this check it reads as "missing [weight, ...]", which
 * points the wrong way. Say what was given and where to go instead.
 */
function checkNotModelFile(sd: object, who: string): void {
  if (sd instanceof Map) {
    throw new StateDictError(
      `${who}.loadStateDict: got a Map of ${sd.size} entries (a model file's tensor map?), expected a plain object of Float32Array/number[] by key; ${LOAD_FROM_FILE_HINT}`,
    );
  }
  const record = sd as Record<string, unknown>;
  if (record['tensors'] instanceof Map && Array.isArray(record['batchNorms'])) {
    throw new StateDictError(`${who}.loadStateDict: got a ModelFile, expected a state dict; ${LOAD_FROM_FILE_HINT}`);
  }
  for (const [key, v] of Object.entries(record)) {
    if (v !== null && typeof v === 'object' && !Array.isArray(v) && !ArrayBuffer.isView(v) && 'dtype' in v && 'data' in v) {
      throw new StateDictError(
        `${who}.loadStateDict: '${key}' is a FileTensor ({ dtype, shape, data }), expected a Float32Array or number[]; ${LOAD_FROM_FILE_HINT}`,
      );
    }
  }
}

function expectedKeys(names: StateNames, parts: StateParts): string[] {
  return [
    ...(parts.weight ? [names.weight] : []),
    ...(parts.bias ? [names.bias] : []),
    ...(parts.running ? [names.runningMean, names.runningVar, ...(names.tracked === null ? [] : [names.tracked])] : []),
  ];
}
