import type { BatchNormContext } from '../context.js';
import { checkSameDType } from '../dtype.js';
import { ShapeError } from '../errors.js';
import { sameShapeAndLayout, type Layout, type Tensor } from '../tensor.js';

/**
 * How a logical (N, C, ...spatial) tensor sits in memory, reduced to what the kernels need.
 * With one spatial position (S == 1) both layouts are the same (N, C) matrix, read along C.
 */
export interface Geometry {
  readonly n: number;
  readonly c: number;
  /** Product of the spatial dimensions (1 for (N, C) input). */
  readonly s: number;
  /** Values per channel: N × S. */
  readonly perChannel: number;
  /** `'cf'`: channel-major segments of S values; `'cl'`: rows of C values. */
  readonly order: 'cf' | 'cl';
}

export function geometryOf(shape: readonly number[], layout: Layout): Geometry {
  const n = shape[0] ?? 0;
  const c = shape[1] ?? 0;
  let s = 1;
  for (let i = 2; i < shape.length; i++) s *= shape[i] ?? 0;
  const order = layout === 'channels_last' || s === 1 ? 'cl' : 'cf';
  return { n, c, s, perChannel: n * s, order };
}

/**
 * The one shape+layout check of a tensor that stands for another: an output for the input, dL/dy
 * for the forward's input, a residual, a gradient. `t` must be this context's and have `like`'s
 * dtype, shape and layout; `what` names the reference in the message ("the input's").
 * @throws ContextMismatchError / DestroyedError from the context; ArgumentError for another dtype;
 *   ShapeError naming both shapes and layouts.
 */
export function checkShapeAndLayout(ctx: BatchNormContext, t: Tensor, like: Tensor, argument: string, what: string, who: string): void {
  ctx.assertOwnTensor(t, argument);
  checkSameDType(t, like, argument, who);
  if (!sameShapeAndLayout(t, like)) {
    throw new ShapeError(
      `${who}: ${argument} must match ${what} shape [${like.shape.join(', ')}] and layout '${like.layout}', got [${t.shape.join(', ')}] '${t.layout}'`,
    );
  }
}
