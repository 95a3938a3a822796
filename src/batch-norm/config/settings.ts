import { ArgumentError } from '../../errors.js';
import {
  batchFactorOf,
  checkMomentumMeaning,
  checkVarianceEstimator,
  conventionOf,
  type Convention,
  type MomentumMeaning,
  type RunningUpdate,
  type VarianceEstimator,
} from './conventions.js';
import { checkBoolean, checkEps, checkMomentum } from './options.js';

/** Options that pick a convention and override its running-statistics rules. */
export interface ConventionOptions {
  convention?: unknown;
  eps?: unknown;
  momentum?: unknown;
  varianceMomentum?: unknown;
  momentumMeaning?: unknown;
  varianceEstimator?: unknown;
}

/** Validated convention settings; momenta are kept in the user's meaning. */
export interface ConventionSettings {
  readonly convention: Convention;
  readonly eps: number;
  readonly momentum: number | null;
  /** undefined: same as `momentum`. */
  readonly varianceMomentum: number | null | undefined;
  readonly momentumMeaning: MomentumMeaning;
  readonly varianceEstimator: VarianceEstimator;
}

/**
 * Resolves `options` against their convention (default PyTorch), checking every value.
 * @param allowNullMomentum whether `momentum: null` (cumulative average) is possible here.
 */
export function resolveConvention(options: ConventionOptions, allowNullMomentum: boolean): ConventionSettings {
  const convention = conventionOf(options.convention ?? 'pytorch');
  const momentumMeaning = checkMomentumMeaning(options.momentumMeaning ?? convention.momentumMeaning);
  const varianceEstimator = checkVarianceEstimator(options.varianceEstimator ?? convention.varianceEstimator);
  const eps = checkConventionEps(options.eps ?? convention.eps, convention);
  const momentum = checkMomentumFor(
    options.momentum === undefined ? convention.momentum : options.momentum,
    allowNullMomentum,
    momentumMeaning,
    'momentum',
  );
  const varianceMomentum =
    options.varianceMomentum === undefined
      ? undefined
      : checkMomentumFor(options.varianceMomentum, allowNullMomentum, momentumMeaning, 'varianceMomentum');
  if ((momentum === null) !== ((varianceMomentum === undefined ? momentum : varianceMomentum) === null)) {
    throw new ArgumentError('momentum and varianceMomentum must both be numbers or both null (cumulative average)');
  }
  return { convention, eps, momentum, varianceMomentum, momentumMeaning, varianceEstimator };
}

/** eps as `convention` accepts it: > 0 (or ≥ 0), and at least its documented minimum. */
export function checkConventionEps(value: unknown, convention: Convention): number {
  const eps = checkEps(value, 'eps', convention.allowZeroEps);
  if (eps < convention.minEps) {
    throw new ArgumentError(`eps must be >= ${convention.minEps} under the '${convention.name}' convention, got ${eps}`);
  }
  return eps;
}

/** The eps the kernels use: the framework's silent floor applied (tf.nn.fused_batch_norm: 1.001e-5). */
export function kernelEps(s: ConventionSettings): number {
  return Math.max(s.eps, s.convention.epsFloor);
}

/** A momentum in `meaning`: null (cumulative) only where allowed and only for the batch meaning. */
export function checkMomentumFor(value: unknown, allowNull: boolean, meaning: MomentumMeaning, argument: string): number | null {
  return checkMomentum(value, allowNull && meaning === 'batch', argument);
}

/** The kernels' view of `s`: weights of the batch value and the estimator. */
export function runningUpdateOf(s: ConventionSettings): RunningUpdate {
  const varMomentum = s.varianceMomentum === undefined ? s.momentum : s.varianceMomentum;
  return {
    meanFactor: batchFactorOf(s.momentum, s.momentumMeaning),
    varFactor: batchFactorOf(varMomentum, s.momentumMeaning),
    varianceEstimator: s.varianceEstimator,
  };
}

/** Resolves `scale`/`center` against `affine` (all default true). */
export function resolveAffine(options: { affine?: unknown; scale?: unknown; center?: unknown }): { scale: boolean; center: boolean } {
  const affine = checkBoolean(options.affine ?? true, 'affine');
  return { scale: checkBoolean(options.scale ?? affine, 'scale'), center: checkBoolean(options.center ?? affine, 'center') };
}
