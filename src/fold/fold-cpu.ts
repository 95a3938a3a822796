/**
 * Folding an evaluation-mode batch norm into the convolution or linear layer before it, on the CPU,
 * exactly as PyTorch's `torch.nn.utils.fusion.fuse_conv_bn_weights` / `fuse_linear_bn_weights`:
 *
 *   invstd  = 1 / sqrt(running_var + eps)
 *   weight' = weight · (bn_weight · invstd)          per output channel
 *   bias'   = (bias − running_mean) · invstd · bn_weight + bn_bias   (bias = 0 when absent)
 *
 * in float64, rounded once to float32 (PyTorch computes in the tensors' dtype; on float64 copies
 * this is its exact result).
 */
import { optionKeys, optionsObject } from '../arguments.js';
import { ArgumentError, ShapeError } from '../errors.js';
import { checkEps } from '../batch-norm/config/options.js';
import { foldGeometry, outputChannel, type WeightLayout } from './fold-geometry.js';
import { CONVENTIONS } from '../batch-norm/config/conventions.js';

/** The layer before the batch norm: a convolution (1-D/2-D/3-D, grouped or not) or a linear layer. */
export interface FoldLayer {
  /** The weight's values in `layout` memory order. */
  readonly weight: Float32Array | readonly number[];
  /** Its shape, e.g. [O, I/groups, kH, kW] (channels_first) or [kH, kW, I/groups, O] (channels_last). */
  readonly weightShape: readonly number[];
  /** Per-output-channel bias, or null/absent (conv with bias=False). */
  readonly bias?: Float32Array | readonly number[] | null;
}

/** The batch norm's evaluation-mode values, with PyTorch `state_dict` keys. */
export interface FoldBatchNormState {
  /** Default all ones (affine=False). */
  readonly weight?: Float32Array | readonly number[] | null;
  /** Default all zeros (affine=False). */
  readonly bias?: Float32Array | readonly number[] | null;
  /** Required (optional in the type so that a module's `stateDict()` is accepted as it is). */
  readonly running_mean?: Float32Array | readonly number[] | undefined;
  /** Required, as running_mean. */
  readonly running_var?: Float32Array | readonly number[] | undefined;
}

/** Options of {@link foldBatchNorm}. */
export interface FoldOptions {
  /** The batch norm's eps. Default 1e-5. */
  eps?: number;
  /** Where the weight's output channels are. Default `'channels_first'` (PyTorch). */
  layout?: WeightLayout;
}

/** The keys of {@link FoldOptions}; any other key is rejected. */
export const FOLD_OPTION_KEYS = optionKeys<FoldOptions>({ eps: true, layout: true });

/** A folded layer: the batch norm is gone, the bias always exists. */
export interface FoldedLayer {
  /** Same shape and memory order as the input weight. */
  readonly weight: Float32Array;
  /** One value per output channel. */
  readonly bias: Float32Array;
}

type Values = Float32Array | readonly number[];

function vector(who: string, name: string, v: Values | null | undefined, channels: number): Values | null {
  if (v === null || v === undefined) return null;
  if (!(v instanceof Float32Array) && !Array.isArray(v))
    throw new ArgumentError(`${who}: ${name} must be a Float32Array or number[], got ${typeof v}`);
  if (v.length !== channels) throw new ShapeError(`${who}: ${name} has ${v.length} values, expected ${channels} (one per output channel)`);
  return v;
}

/**
 * Folds `bn` (evaluation mode) into `layer` and returns new arrays; the inputs are not modified.
 *
 * @example
 * // PyTorch conv (O×I×kH×kW) followed by BatchNorm2d(O), e.g. read with readModelFile:
 * const folded = foldBatchNorm({ weight: convW, weightShape: [16, 3, 3, 3], bias: null },
 *                              bnLayer.stateDict, { eps: 1e-5 });
 * // Keras Conv2D kernel (kH×kW×I×O) + BatchNormalization(epsilon=1e-3):
 * foldBatchNorm({ weight: kernel, weightShape: [3, 3, 3, 16], bias }, { weight: gamma, bias: beta,
 *   running_mean: movingMean, running_var: movingVar }, { eps: 1e-3, layout: 'channels_last' });
 *
 * @throws ShapeError when the weight's output channels, the bias or a batch-norm vector disagree;
 *   ArgumentError for eps ≤ 0 or a bad layout.
 */
export function foldBatchNorm(layer: FoldLayer, bn: FoldBatchNormState, options: FoldOptions | null = {}): FoldedLayer {
  const who = 'foldBatchNorm';
  const opts = optionsObject<FoldOptions>(options, `${who} options`, FOLD_OPTION_KEYS);
  const eps = checkEps(opts.eps ?? CONVENTIONS.pytorch.eps);
  const runningMean = vector(who, 'running_mean', bn.running_mean, bn.running_mean?.length ?? 0);
  const channels = runningMean?.length ?? 0;
  const runningVar = vector(who, 'running_var', bn.running_var, channels);
  if (!runningMean || !runningVar) throw new ArgumentError(`${who}: running_mean and running_var are required`);
  const g = foldGeometry(who, layer.weightShape, channels, opts.layout);
  if (!(layer.weight instanceof Float32Array) && !Array.isArray(layer.weight))
    throw new ArgumentError(`${who}: weight must be a Float32Array or number[]`);
  if (layer.weight.length !== g.count) {
    throw new ShapeError(`${who}: weight has ${layer.weight.length} values, shape [${layer.weightShape.join(', ')}] needs ${g.count}`);
  }
  const bnWeight = vector(who, 'bn weight', bn.weight, channels);
  const bnBias = vector(who, 'bn bias', bn.bias, channels);
  const bias = vector(who, 'bias', layer.bias, channels);

  const scale = new Float64Array(channels);
  const foldedBias = new Float32Array(channels);
  for (let c = 0; c < channels; c++) {
    const invstd = 1 / Math.sqrt((runningVar[c] as number) + eps);
    const w = bnWeight ? (bnWeight[c] as number) : 1;
    scale[c] = w * invstd;
    foldedBias[c] = ((bias ? (bias[c] as number) : 0) - (runningMean[c] as number)) * invstd * w + (bnBias ? (bnBias[c] as number) : 0);
  }
  const foldedWeight = new Float32Array(g.count);
  for (let i = 0; i < g.count; i++) foldedWeight[i] = (layer.weight[i] as number) * (scale[outputChannel(g, i)] as number);
  return { weight: foldedWeight, bias: foldedBias };
}
