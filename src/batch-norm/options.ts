import { ArgumentError } from '../errors.js';

/** Options shared by {@link BatchNorm1d}, {@link BatchNorm2d} and {@link BatchNorm3d}, as in PyTorch. */
export interface BatchNormOptions {
  /** Added to the variance inside the square root. Default 1e-5. Must be > 0. */
  eps?: number;
  /**
   * Weight of the new batch statistic in the running average. Default 0.1. `null` means a
   * cumulative moving average (factor 1 / num_batches_tracked), as PyTorch's `momentum=None`.
   */
  momentum?: number | null;
  /** Learnable per-channel weight (init 1) and bias (init 0). Default true. */
  affine?: boolean;
  /**
   * Keep running_mean (init 0), running_var (init 1) and num_batches_tracked. Default true. When
   * false, evaluation also normalizes with batch statistics and no running buffers exist.
   */
  trackRunningStats?: boolean;
}

export function checkEps(eps: unknown, argument = 'eps'): number {
  if (typeof eps !== 'number' || !Number.isFinite(eps) || eps <= 0) {
    throw new ArgumentError(`${argument} must be a finite number > 0, got ${String(eps)}`);
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

