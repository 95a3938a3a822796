/** Where the output channels of a convolution or linear weight lie, shared by the CPU and GPU folds. */
import { ArgumentError, ShapeError } from '../errors.js';

/**
 * Memory order of a conv/linear weight, named by where its OUTPUT channels are:
 * - `'channels_first'`: the first axis (PyTorch, ONNX): Conv O×(I/groups)×k…, Linear out×in.
 * - `'channels_last'`: the last axis (Keras, TF.js): Conv k…×(I/groups)×O (HWIO), Dense in×out,
 *   DepthwiseConv2D k×k×C×M whose C·M outputs are the last two axes together.
 */
export type WeightLayout = 'channels_first' | 'channels_last';

/** How a weight of `count` values splits into output channels. */
export interface FoldGeometry {
  /** Output channels (the batch norm's C). */
  readonly channels: number;
  /** Values of the weight. */
  readonly count: number;
  /** Values per output channel. */
  readonly inner: number;
  /** True when the output channel is the fastest-moving index (channels_last). */
  readonly channelsLast: boolean;
}

/**
 * Validates a weight shape against the batch norm's channel count.
 * @throws ShapeError when no axis (or, channels_last, no pair of last axes) holds `channels`.
 */
export function foldGeometry(
  who: string,
  weightShape: readonly number[],
  channels: number,
  layout: WeightLayout | undefined,
): FoldGeometry {
  const l = layout ?? 'channels_first';
  if (l !== 'channels_first' && l !== 'channels_last') {
    throw new ArgumentError(`${who}: layout must be 'channels_first' or 'channels_last', got ${JSON.stringify(layout)}`);
  }
  if (
    !Array.isArray(weightShape) ||
    weightShape.length < 2 ||
    weightShape.length > 5 ||
    weightShape.some((d) => !Number.isInteger(d) || d < 1)
  ) {
    throw new ShapeError(`${who}: weight shape must have 2 (linear) to 5 (conv3d) positive dimensions, got ${JSON.stringify(weightShape)}`);
  }
  const count = weightShape.reduce((a, b) => a * b, 1);
  const first = weightShape[0] ?? 0;
  const last = weightShape[weightShape.length - 1] ?? 0;
  const lastTwo = last * (weightShape[weightShape.length - 2] ?? 0);
  const ok = l === 'channels_first' ? first === channels : last === channels || (weightShape.length > 2 && lastTwo === channels);
  if (!ok) {
    const where = l === 'channels_first' ? `the first axis (${first})` : `the last axis (${last}) or, depthwise, the last two (${lastTwo})`;
    throw new ShapeError(
      `${who}: batch norm has ${channels} channels but the ${l} weight of shape [${weightShape.join(', ')}] has ${where} output channels`,
    );
  }
  return { channels, count, inner: count / channels, channelsLast: l === 'channels_last' };
}

/** The output channel of weight value `i`. */
export function outputChannel(g: FoldGeometry, i: number): number {
  return g.channelsLast ? i % g.channels : Math.floor(i / g.inner);
}
