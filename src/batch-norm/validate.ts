import { rejectUnknownKeys } from '../arguments.js';
import type { BatchNormContext } from '../context.js';
import { ArgumentError, InsufficientValuesError, ShapeError } from '../errors.js';
import { BUFFER_COPY_DST } from '../gpu/constants.js';
import type { Tensor } from '../tensor.js';
import { checkFloat32 } from '../dtype.js';
import { BATCH_STATS_OUTPUT_KEYS, type BatchStatsOutputs } from './forward.js';
import { checkShapeAndLayout, geometryOf, type Geometry } from './geometry.js';

/** True for a rank in `ranks` (null: any rank ≥ 2, as (N, C, ...)). */
function rankAccepted(rank: number, ranks: readonly number[] | null): boolean {
  return ranks ? ranks.includes(rank) : rank >= 2;
}

/**
 * Checks `x` is a live input of this context with one of `ranks` and `channels` channels, and a
 * float32 one unless `dtypes` is `'any'` (the batch-norm modules and functions, which read
 * float16 / bfloat16 activations; SyncBatchNorm and the ONNX operator stay float32).
 */
export function checkInput(
  ctx: BatchNormContext,
  x: Tensor,
  argument: string,
  ranks: readonly number[] | null,
  channels: number | null,
  who: string,
  dtypes: 'float32' | 'any' = 'float32',
): Geometry {
  ctx.assertOwnTensor(x, argument);
  if (dtypes === 'float32') checkFloat32(x, argument, who);
  const rank = x.shape.length;
  if (!rankAccepted(rank, ranks)) {
    const expected = ranks ? ranks.map((r) => `${r}-D`).join(' or ') : 'at least 2-D';
    throw new ShapeError(`${who}: ${argument} must be ${expected} (N, C, ...), got ${rank}-D input of shape [${x.shape.join(', ')}]`);
  }
  const g = geometryOf(x.shape, x.layout);
  if (channels !== null && g.c !== channels) {
    throw new ShapeError(
      `${who}: ${argument} has ${g.c} channels (shape[1] of [${x.shape.join(', ')}]) but the module has numFeatures = ${channels}`,
    );
  }
  if (x.size === 0) {
    throw new ShapeError(`${who}: ${argument} is empty (shape [${x.shape.join(', ')}]); batch norm needs at least one value per channel`);
  }
  return g;
}

/** PyTorch's "Expected more than 1 value per channel when training". */
export function checkTrainingValues(g: Geometry, shape: readonly number[], who: string): void {
  if (g.perChannel <= 1) {
    throw new InsufficientValuesError(
      `${who}: expected more than 1 value per channel when training, got input of shape [${shape.join(', ')}] (N x spatial = ${g.perChannel})`,
    );
  }
}

/** Checks a per-channel parameter tensor: this context, shape [C], float32. */
export function checkChannelTensor(ctx: BatchNormContext, t: Tensor, argument: string, channels: number, who: string): void {
  // A [C] vector as a plain array is the commonest mistake: say how to make the Tensor it needs.
  if (ArrayBuffer.isView(t) || Array.isArray(t)) {
    const got = Array.isArray(t) ? 'an Array' : (t as ArrayBufferView).constructor.name;
    throw new ArgumentError(
      `${who}: ${argument} must be a Tensor of shape [${channels}], got ${got}; wrap it once with ctx.tensor(values, [${channels}]) and reuse the tensor`,
    );
  }
  ctx.assertOwnTensor(t, argument);
  checkFloat32(t, argument, who);
  if (t.shape.length !== 1 || t.shape[0] !== channels) {
    throw new ShapeError(`${who}: ${argument} must have shape [${channels}], got [${t.shape.join(', ')}]`);
  }
}

/** Checks an output tensor: same shape, layout and dtype as the input, and not the input itself. */
export function checkOutput(ctx: BatchNormContext, y: Tensor, x: Tensor, who: string): void {
  checkShapeAndLayout(ctx, y, x, 'output', "the input's", who);
  if (y === x) throw new ArgumentError(`${who}: output must not be the input tensor itself`);
}

/** True for an input of an accepted rank and channel count that holds no values (an empty batch). */
export function isEmptyBatch(x: Tensor, ranks: readonly number[] | null, channels: number | null): boolean {
  if (!rankAccepted(x.shape.length, ranks)) return false;
  if (channels !== null && x.shape[1] !== channels) return false;
  return x.size === 0;
}

/**
 * Checks the optional batch-statistics outputs: shape [C], this context, distinct, COPY_DST on
 * WebGPU (they are filled by copies), and only where the forward computes batch statistics.
 */
export function checkBatchStatsOutputs(
  ctx: BatchNormContext,
  outputs: { mean?: Tensor | null; invstd?: Tensor | null; variance?: Tensor | null } | null | undefined,
  channels: number,
  usesBatchStats: boolean,
  who: string,
): BatchStatsOutputs | null {
  if (outputs === undefined || outputs === null) return null;
  if (typeof outputs !== 'object')
    throw new ArgumentError(`${who}: batchStats must be an object { mean?, invstd?, variance? }, got ${String(outputs)}`);
  rejectUnknownKeys(outputs, BATCH_STATS_OUTPUT_KEYS, `${who}: batchStats`);
  const mean = outputs.mean ?? null;
  const invstd = outputs.invstd ?? null;
  const variance = outputs.variance ?? null;
  const given = [
    ['batchStats.mean', mean],
    ['batchStats.invstd', invstd],
    ['batchStats.variance', variance],
  ] as const;
  if (!mean && !invstd && !variance) return null;
  if (!usesBatchStats) {
    throw new ArgumentError(
      `${who}: batchStats needs a forward that computes batch statistics (training, or trackRunningStats false); this one uses the running statistics`,
    );
  }
  const seen = new Set<Tensor>();
  for (const [name, t] of given) {
    if (!t) continue;
    checkChannelTensor(ctx, t, name, channels, who);
    if (seen.has(t)) throw new ArgumentError(`${who}: ${name} is the same tensor as another batchStats output`);
    seen.add(t);
    const s = t.storage;
    if (s.kind === 'gpu' && (s.buffer.usage & BUFFER_COPY_DST) === 0) {
      throw new ArgumentError(
        `${who}: ${name} needs GPUBufferUsage.COPY_DST on buffer '${s.buffer.label}', its usage is 0x${s.buffer.usage.toString(16)}`,
      );
    }
  }
  return { mean, invstd, variance };
}
