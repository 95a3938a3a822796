import { ArgumentError } from '../../errors.js';
import type { Layout } from '../../tensor.js';

// Each framework's batch-norm conventions, so that a user can type their framework's own numbers
// literally. The sources of every entry are cited next to it and in the README table
// ("Coming from another framework"). The kernels only ever see a factor: the weight of the new
// batch value in `running ← (1 − factor)·running + factor·batch` (see runningUpdateOf).

/** The frameworks this library can mimic. `'pytorch'` (also R torch) is the default. */
export type ConventionName = 'pytorch' | 'keras' | 'tf-keras2-fused' | 'onnx' | 'numpy-ml' | 'mathematica' | 'matlab' | 'cudnn';

/**
 * Which batch variance feeds the running variance:
 * - `'unbiased'`: Σ(x − mean)² / (m − 1) (PyTorch, R torch, cuDNN, tf.keras 2's fused kernel, MATLAB);
 * - `'biased'`: Σ(x − mean)² / m (Keras 3, ONNX, numpy-ml, Mathematica).
 * Normalization always uses the biased one, in every framework.
 */
export type VarianceEstimator = 'unbiased' | 'biased';

/**
 * What `momentum` weighs:
 * - `'batch'`: the new batch value, `running ← (1 − momentum)·running + momentum·batch` (PyTorch,
 *   R torch, cuDNN `exponentialAverageFactor`, MATLAB `MeanDecay`/`VarianceDecay`);
 * - `'running'`: the old running value, `running ← momentum·running + (1 − momentum)·batch`
 *   (Keras/TF `momentum`, ONNX, numpy-ml, Mathematica `"Momentum"`, Chainer `decay`).
 */
export type MomentumMeaning = 'batch' | 'running';

/** Key names of `stateDict`/`loadStateDict` for each framework's parameters and buffers. */
export interface StateNames {
  readonly weight: string;
  readonly bias: string;
  readonly runningMean: string;
  readonly runningVar: string;
  /** The step counter's key, or null where the framework keeps none. */
  readonly tracked: string | null;
}

/** One framework's defaults and edge-case rules. */
export interface Convention {
  readonly name: ConventionName;
  /** Default eps. */
  readonly eps: number;
  /** Whether eps = 0 is accepted (else eps must be > 0). */
  readonly allowZeroEps: boolean;
  /** Smallest eps the framework accepts (MATLAB: 1e-5), or 0. Smaller values are rejected. */
  readonly minEps: number;
  /** eps the framework silently raises smaller values to (tf.nn.fused_batch_norm: 1.001e-5), or 0. */
  readonly epsFloor: number;
  /** Default momentum, in the framework's own meaning. */
  readonly momentum: number;
  readonly momentumMeaning: MomentumMeaning;
  readonly varianceEstimator: VarianceEstimator;
  /** The framework's usual memory order (Keras, tf.keras and numpy-ml: channels last). */
  readonly layout: Layout;
  readonly stateNames: StateNames;
  /**
   * Training with one value per channel: `'error'` raises InsufficientValuesError (PyTorch);
   * `'allow'` computes it (variance 0, so y = bias; an unbiased estimator then divides by
   * max(m − 1, 1), as TensorFlow's fused kernel does).
   */
  readonly singleValue: 'error' | 'allow';
  /** Training on an empty batch: `'error'` (ShapeError) or `'skip'` (empty output, no update). */
  readonly emptyBatch: 'error' | 'skip';
  /** Where the formulas come from. */
  readonly source: string;
}

const PYTORCH_NAMES: StateNames = {
  weight: 'weight',
  bias: 'bias',
  runningMean: 'running_mean',
  runningVar: 'running_var',
  tracked: 'num_batches_tracked',
};
const KERAS_NAMES: StateNames = { weight: 'gamma', bias: 'beta', runningMean: 'moving_mean', runningVar: 'moving_variance', tracked: null };

/** Every convention, by name. Read-only; pass its name as the `convention` option. */
export const CONVENTIONS: Readonly<Record<ConventionName, Convention>> = Object.freeze({
  // torch/nn/modules/batchnorm.py (_BatchNorm: eps 1e-5, momentum 0.1, running_var unbiased);
  // R torch nn_batch_norm*d wraps the same ATen kernel.
  pytorch: {
    name: 'pytorch',
    eps: 1e-5,
    allowZeroEps: false,
    minEps: 0,
    epsFloor: 0,
    momentum: 0.1,
    momentumMeaning: 'batch',
    varianceEstimator: 'unbiased',
    layout: 'channels_first',
    stateNames: PYTORCH_NAMES,
    singleValue: 'error',
    emptyBatch: 'error',
    source: 'torch/nn/modules/batchnorm.py; torch.nn.functional.batch_norm',
  },
  // keras/src/layers/normalization/batch_normalization.py L162-164 (axis -1, momentum 0.99,
  // epsilon 1e-3), L385-391 (moving = moving·momentum + batch·(1 − momentum)), ops.moments: biased.
  keras: {
    name: 'keras',
    eps: 1e-3,
    allowZeroEps: true,
    minEps: 0,
    epsFloor: 0,
    momentum: 0.99,
    momentumMeaning: 'running',
    varianceEstimator: 'biased',
    layout: 'channels_last',
    stateNames: KERAS_NAMES,
    singleValue: 'allow',
    emptyBatch: 'error',
    source: 'keras/src/layers/normalization/batch_normalization.py (Keras 3)',
  },
  // tf.keras 2 (keras v2.15.0 keras/layers/normalization/batch_normalization.py L938
  // exponential_avg_factor = 1 − momentum, L963-976 FusedBatchNormV3 whose running variance carries
  // Bessel's correction n / max(n − 1, 1); L1008-1046 a zero-size batch keeps the moving stats;
  // tensorflow/python/ops/nn_impl.py fused_batch_norm raises epsilon to at least 1.001e-5).
  'tf-keras2-fused': {
    name: 'tf-keras2-fused',
    eps: 1e-3,
    allowZeroEps: true,
    minEps: 0,
    epsFloor: 1.001e-5,
    momentum: 0.99,
    momentumMeaning: 'running',
    varianceEstimator: 'unbiased',
    layout: 'channels_last',
    stateNames: KERAS_NAMES,
    singleValue: 'allow',
    emptyBatch: 'skip',
    source: 'tf.keras 2.15 keras/layers/normalization/batch_normalization.py (fused path); tensorflow/core/kernels/fused_batch_norm_op.cc',
  },
  // onnx.ai/onnx/operators/onnx__BatchNormalization (opset 15): epsilon 1e-5, momentum 0.9,
  // running = input·momentum + current·(1 − momentum), current_var the population variance.
  onnx: {
    name: 'onnx',
    eps: 1e-5,
    allowZeroEps: true,
    minEps: 0,
    epsFloor: 0,
    momentum: 0.9,
    momentumMeaning: 'running',
    varianceEstimator: 'biased',
    layout: 'channels_first',
    stateNames: { weight: 'scale', bias: 'B', runningMean: 'input_mean', runningVar: 'input_var', tracked: null },
    singleValue: 'allow',
    emptyBatch: 'error',
    source: 'ONNX operator BatchNormalization, opset 15',
  },
  // numpy_ml/neural_nets/layers/layers.py L969-1149 (BatchNorm2D: momentum 0.9, epsilon 1e-5,
  // (n_ex, rows, cols, ch) input, running = mm·rm + (1 − mm)·X.var() with numpy's default ddof=0).
  'numpy-ml': {
    name: 'numpy-ml',
    eps: 1e-5,
    allowZeroEps: true,
    minEps: 0,
    epsFloor: 0,
    momentum: 0.9,
    momentumMeaning: 'running',
    varianceEstimator: 'biased',
    layout: 'channels_last',
    stateNames: { weight: 'scaler', bias: 'intercept', runningMean: 'running_mean', runningVar: 'running_var', tracked: null },
    singleValue: 'allow',
    emptyBatch: 'error',
    source: 'numpy_ml/neural_nets/layers/layers.py BatchNorm1D/BatchNorm2D',
  },
  // reference.wolfram.com/language/ref/BatchNormalizationLayer: "Epsilon" 0.001, "Momentum" 0.9,
  // Interleaving False (channel dimension first). The estimator is not documented: we use the
  // biased one, as MXNet's BatchNorm (the engine behind Mathematica's nets) updates moving_var with it.
  mathematica: {
    name: 'mathematica',
    eps: 1e-3,
    allowZeroEps: false,
    minEps: 0,
    epsFloor: 0,
    momentum: 0.9,
    momentumMeaning: 'running',
    varianceEstimator: 'biased',
    layout: 'channels_first',
    stateNames: { weight: 'Gamma', bias: 'Beta', runningMean: 'MovingMean', runningVar: 'MovingVariance', tracked: null },
    singleValue: 'allow',
    emptyBatch: 'error',
    source: 'Wolfram Language BatchNormalizationLayer; MXNet BatchNorm',
  },
  // mathworks.com/help/deeplearning/ref/nnet.cnn.layer.batchnormalizationlayer.html: Epsilon 1e-5
  // (≥ 1e-5), MeanDecay = VarianceDecay = 0.1, μ* ← λ·μ̂ + (1 − λ)·μ*. The estimator of σ̂² is not
  // documented: we use the unbiased one, as MATLAB's GPU path is cuDNN's.
  matlab: {
    name: 'matlab',
    eps: 1e-5,
    allowZeroEps: false,
    minEps: 1e-5,
    epsFloor: 0,
    momentum: 0.1,
    momentumMeaning: 'batch',
    varianceEstimator: 'unbiased',
    layout: 'channels_first',
    stateNames: { weight: 'Scale', bias: 'Offset', runningMean: 'TrainedMean', runningVar: 'TrainedVariance', tracked: null },
    singleValue: 'error',
    emptyBatch: 'error',
    source: 'MATLAB batchNormalizationLayer / dlarray batchnorm',
  },
  // cudnnBatchNormalizationForwardTraining: exponentialAverageFactor weighs the new value
  // (1/(1+n) gives a cumulative average), resultRunningVariance is unbiased, epsilon ≥
  // CUDNN_BN_MIN_EPSILON (1e-5 in older headers; we only require eps > 0, the floor differs by
  // version); defaults follow PyTorch, which calls it.
  cudnn: {
    name: 'cudnn',
    eps: 1e-5,
    allowZeroEps: false,
    minEps: 0,
    epsFloor: 0,
    momentum: 0.1,
    momentumMeaning: 'batch',
    varianceEstimator: 'unbiased',
    layout: 'channels_first',
    stateNames: PYTORCH_NAMES,
    singleValue: 'error',
    emptyBatch: 'error',
    source: 'cuDNN cudnnBatchNormalizationForwardTraining',
  },
});

/** Looks up a convention by name; ArgumentError lists the valid names. */
export function conventionOf(name: unknown, argument = 'convention'): Convention {
  if (typeof name === 'string' && Object.hasOwn(CONVENTIONS, name)) return CONVENTIONS[name as ConventionName];
  throw new ArgumentError(
    `${argument} must be one of ${Object.keys(CONVENTIONS)
      .map((k) => `'${k}'`)
      .join(', ')}, got ${String(name)}`,
  );
}

/** Validates a {@link VarianceEstimator}; ArgumentError otherwise. */
export function checkVarianceEstimator(value: unknown, argument = 'varianceEstimator'): VarianceEstimator {
  if (value === 'unbiased' || value === 'biased') return value;
  throw new ArgumentError(`${argument} must be 'unbiased' or 'biased', got ${String(value)}`);
}

/** Validates a {@link MomentumMeaning}; ArgumentError otherwise. */
export function checkMomentumMeaning(value: unknown, argument = 'momentumMeaning'): MomentumMeaning {
  if (value === 'batch' || value === 'running') return value;
  throw new ArgumentError(`${argument} must be 'batch' or 'running', got ${String(value)}`);
}

/** How one training step folds the batch statistics into the running ones, as the kernels see it. */
export interface RunningUpdate {
  /** Weight of the batch mean, or null for a cumulative average (1 / steps). */
  readonly meanFactor: number | null;
  /** Weight of the batch variance, or null for a cumulative average. */
  readonly varFactor: number | null;
  readonly varianceEstimator: VarianceEstimator;
}

/** The batch factor of a momentum given in `meaning`; null (cumulative) stays null. */
export function batchFactorOf(momentum: number | null, meaning: MomentumMeaning): number | null {
  if (momentum === null) return null;
  return meaning === 'batch' ? momentum : 1 - momentum;
}
