import { optionKeys } from '../../arguments.js';
import { ArgumentError } from '../../errors.js';
import type { ConventionName, MomentumMeaning, VarianceEstimator } from './conventions.js';

/** Options shared by {@link BatchNorm1d}, {@link BatchNorm2d} and {@link BatchNorm3d}, as in PyTorch. */
export interface BatchNormOptions {
  /**
   * Whose batch norm to mimic: sets the defaults of every option below (eps, momentum and its
   * meaning, variance estimator, state-dict names) and the edge-case rules, so that you can type
   * your framework's own numbers. Default `'pytorch'` (R torch is the same). See `CONVENTIONS`.
   */
  convention?: ConventionName;
  /** Added to the variance inside the square root. Default: the convention's (PyTorch 1e-5). Must be > 0 (≥ 0 where the convention accepts 0). */
  eps?: number;
  /**
   * Running-average momentum, in the meaning of `momentumMeaning`. Default: the convention's
   * (PyTorch 0.1). `null` means a cumulative moving average (factor 1 / num_batches_tracked), as
   * PyTorch's `momentum=None`; only with `momentumMeaning: 'batch'`.
   */
  momentum?: number | null;
  /**
   * Momentum for the running variance when it differs from the mean's (MATLAB `VarianceDecay`),
   * in the same meaning. Default: `momentum`.
   */
  varianceMomentum?: number | null;
  /** What `momentum` weighs: `'batch'` (PyTorch) or `'running'` (Keras, ONNX). Default: the convention's. */
  momentumMeaning?: MomentumMeaning;
  /** Variance that feeds running_var: `'unbiased'` (PyTorch) or `'biased'` (Keras 3, ONNX). Default: the convention's. */
  varianceEstimator?: VarianceEstimator;
  /** Learnable per-channel weight (init 1) and bias (init 0). Default true. Sets both `scale` and `center`. */
  affine?: boolean;
  /** Learnable weight (Keras `scale`, gamma). Default `affine`. */
  scale?: boolean;
  /** Learnable bias (Keras `center`, beta). Default `affine`. */
  center?: boolean;
  /**
   * Keep running_mean (init 0), running_var (init 1) and num_batches_tracked. Default true. When
   * false, evaluation also normalizes with batch statistics and no running buffers exist.
   */
  trackRunningStats?: boolean;
}

/** The keys of {@link BatchNormOptions}; any other key is rejected. */
export const BATCH_NORM_OPTION_KEYS = optionKeys<BatchNormOptions>({
  convention: true,
  eps: true,
  momentum: true,
  varianceMomentum: true,
  momentumMeaning: true,
  varianceEstimator: true,
  affine: true,
  scale: true,
  center: true,
  trackRunningStats: true,
});

export function checkEps(eps: unknown, argument = 'eps', allowZero = false): number {
  if (typeof eps !== 'number' || !Number.isFinite(eps) || eps < 0 || (eps === 0 && !allowZero)) {
    throw new ArgumentError(`${argument} must be a finite number ${allowZero ? '>= 0' : '> 0'}, got ${String(eps)}`);
  }
  return eps;
}

export function checkMomentum(momentum: unknown, allowNull: boolean, argument = 'momentum'): number | null {
  if (momentum === null && allowNull) return null;
  if (typeof momentum !== 'number' || !(momentum >= 0 && momentum <= 1)) {
    const expected = allowNull ? 'a number in [0, 1] or null' : 'a number in [0, 1]';
    throw new ArgumentError(`${argument} must be ${expected}, got ${String(momentum)}`);
  }
  return momentum;
}

export function checkBoolean(value: unknown, argument: string): boolean {
  if (typeof value !== 'boolean') throw new ArgumentError(`${argument} must be a boolean, got ${String(value)}`);
  return value;
}

export function checkNumFeatures(numFeatures: unknown): number {
  if (typeof numFeatures !== 'number' || !Number.isInteger(numFeatures) || numFeatures < 1) {
    throw new ArgumentError(`numFeatures must be a positive integer, got ${String(numFeatures)}`);
  }
  return numFeatures;
}
