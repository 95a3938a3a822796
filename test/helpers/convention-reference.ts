/**
 * Float64 references for each framework's batch norm, written from the framework's own published
 * formulas (each cited where it is written out). Values are logical (N, C, ...) row-major arrays.
 * These are deliberately independent of src/: no shared code, each framework in its own words.
 */
import type { ConventionName } from '../../src/index.js';

/** A batch's per-channel statistics, both variances, in float64. */
export interface Moments {
  readonly mean: Float64Array;
  /** Σ(x − mean)² / m: numpy's var(ddof=0), ONNX ReduceVar, tf.nn.moments. */
  readonly popVar: Float64Array;
  /** Σ(x − mean)² / (m − 1): torch.var(unbiased=True). */
  readonly sampleVar: Float64Array;
  /** Values per channel. */
  readonly m: number;
}

/** Two-pass float64 moments of logical (N, C, ...) values. */
export function moments(x: ArrayLike<number>, shape: readonly number[]): Moments {
  const n = shape[0] ?? 0;
  const c = shape[1] ?? 0;
  const s = shape.slice(2).reduce((a, b) => a * b, 1);
  const m = n * s;
  const mean = new Float64Array(c);
  const ss = new Float64Array(c);
  for (let i = 0; i < n; i++)
    for (let ch = 0; ch < c; ch++) for (let k = 0; k < s; k++) mean[ch] = (mean[ch] as number) + (x[(i * c + ch) * s + k] as number) / m;
  for (let i = 0; i < n; i++)
    for (let ch = 0; ch < c; ch++)
      for (let k = 0; k < s; k++) {
        const d = (x[(i * c + ch) * s + k] as number) - (mean[ch] as number);
        ss[ch] = (ss[ch] as number) + d * d;
      }
  return { mean, popVar: ss.map((v) => v / m), sampleVar: ss.map((v) => v / (m - 1)), m };
}

/** Per-channel state of a layer, float64. */
export interface RefState {
  weight: Float64Array;
  bias: Float64Array;
  runningMean: Float64Array;
  runningVar: Float64Array;
}

/** The hyper-parameters as each framework's user types them. */
export interface RefHyper {
  readonly eps: number;
  /** The framework's own momentum (Keras momentum, ONNX momentum, cuDNN exponentialAverageFactor, MATLAB MeanDecay, ...). */
  readonly momentum: number;
  /** MATLAB's VarianceDecay; other frameworks use `momentum`. */
  readonly varianceMomentum?: number;
}

/** y = (x − mean) / sqrt(var + eps) · weight + bias, the normalization every framework shares. */
export function normalizeRef(
  x: ArrayLike<number>,
  shape: readonly number[],
  mean: ArrayLike<number>,
  variance: ArrayLike<number>,
  st: RefState,
  eps: number,
): Float64Array {
  const c = shape[1] ?? 0;
  const s = shape.slice(2).reduce((a, b) => a * b, 1);
  const y = new Float64Array(x.length);
  for (let i = 0; i < x.length; i++) {
    const ch = Math.floor(i / s) % c;
    y[i] =
      (((x[i] as number) - (mean[ch] as number)) / Math.sqrt((variance[ch] as number) + eps)) * (st.weight[ch] as number) +
      (st.bias[ch] as number);
  }
  return y;
}

/**
 * One training step of `framework`: returns y and updates `st` in place, each in the framework's
 * own formula. All frameworks normalize with the population (biased) batch variance.
 */
export function trainStepRef(
  framework: ConventionName,
  x: ArrayLike<number>,
  shape: readonly number[],
  st: RefState,
  h: RefHyper,
): Float64Array {
  const mo = moments(x, shape);
  const y = normalizeRef(x, shape, mo.mean, mo.popVar, st, h.eps);
  const c = mo.mean.length;
  for (let ch = 0; ch < c; ch++) {
    const rm = st.runningMean[ch] as number;
    const rv = st.runningVar[ch] as number;
    const mean = mo.mean[ch] as number;
    const popVar = mo.popVar[ch] as number;
    const sampleVar = mo.sampleVar[ch] as number;
    const mom = h.momentum;
    switch (framework) {
      case 'pytorch':
      case 'cudnn':
        // torch.nn.BatchNorm2d docs: x̂_new = (1 − momentum) × x̂ + momentum × x_t, "the running
        // variance is calculated via the unbiased estimator" (torch/nn/modules/batchnorm.py).
        // cuDNN cudnnBatchNormalizationForwardTraining: runningMean = newMean·factor +
        // runningMean·(1 − factor), resultRunningVariance with the unbiased variance.
        st.runningMean[ch] = (1 - mom) * rm + mom * mean;
        st.runningVar[ch] = (1 - mom) * rv + mom * sampleVar;
        break;
      case 'keras':
        // keras/src/layers/normalization/batch_normalization.py L385-391:
        //   moving_mean * momentum + mean * (1 - momentum); variance from ops.moments, which is
        //   mean(square(x)) - square(mean) (keras/src/backend/tensorflow/nn.py L1614): population.
        st.runningMean[ch] = rm * mom + mean * (1 - mom);
        st.runningVar[ch] = rv * mom + popVar * (1 - mom);
        break;
      case 'tf-keras2-fused': {
        // keras v2.15.0 keras/layers/normalization/batch_normalization.py L938:
        // exponential_avg_factor = 1 - momentum, fed to FusedBatchNormV3, whose kernel
        // (tensorflow/core/kernels/fused_batch_norm_op.cc) updates
        //   running = (1 - factor) * running + factor * batch_var * rest_size / max(rest_size - 1, 1).
        const factor = 1 - mom;
        const bessel = mo.m / Math.max(mo.m - 1, 1);
        st.runningMean[ch] = (1 - factor) * rm + factor * mean;
        st.runningVar[ch] = (1 - factor) * rv + factor * popVar * bessel;
        break;
      }
      case 'onnx':
        // onnx.ai/onnx/operators/onnx__BatchNormalization (opset 15):
        //   running_mean = input_mean * momentum + current_mean * (1 - momentum)
        //   running_var  = input_var * momentum + current_var * (1 - momentum), current_var = ReduceVar (population)
        st.runningMean[ch] = rm * mom + mean * (1 - mom);
        st.runningVar[ch] = rv * mom + popVar * (1 - mom);
        break;
      case 'numpy-ml':
        // numpy_ml/neural_nets/layers/layers.py L1147-1149 (BatchNorm2D.forward):
        //   X_var = X.var(axis=(0, 1, 2))  (numpy ddof=0); running_mean = mm * rm + (1.0 - mm) * X_mean
        st.runningMean[ch] = mom * rm + (1 - mom) * mean;
        st.runningVar[ch] = mom * rv + (1 - mom) * popVar;
        break;
      case 'mathematica':
        // reference.wolfram.com/language/ref/BatchNormalizationLayer: "Momentum" 0.9 (momentum of the
        // moving estimates); MXNet BatchNorm (its engine): moving = moving·momentum + data·(1 − momentum),
        // data_var the population variance (our documented choice: the estimator is undocumented).
        st.runningMean[ch] = rm * mom + mean * (1 - mom);
        st.runningVar[ch] = rv * mom + popVar * (1 - mom);
        break;
      case 'matlab': {
        // mathworks.com/help/deeplearning/ref/nnet.cnn.layer.batchnormalizationlayer.html, MeanDecay:
        //   μ* = λμ·μ̂ + (1 − λμ)·μ*; VarianceDecay: σ²* = λσ²·σ̂² + (1 − λσ²)·σ²*
        // σ̂² unbiased (our documented choice).
        const lv = h.varianceMomentum ?? mom;
        st.runningMean[ch] = mom * mean + (1 - mom) * rm;
        st.runningVar[ch] = lv * sampleVar + (1 - lv) * rv;
        break;
      }
    }
  }
  return y;
}

/** Eval: every framework normalizes with its running statistics. */
export function evalRef(x: ArrayLike<number>, shape: readonly number[], st: RefState, eps: number): Float64Array {
  return normalizeRef(x, shape, st.runningMean, st.runningVar, st, eps);
}

/**
 * numpy-ml's BatchNorm2D backward, numpy_ml/neural_nets/layers/layers.py L1192-1215 (`_bwd`):
 *   N = (X - X_mean) / sqrt(X_var + ep); dIntercept = dLdy.sum(0); dScaler = sum(dLdy * N, 0)
 *   dN = dLdy * scaler; dX = (n_ex * dN - dN.sum(0) - N * (dN * N).sum(0)) / (n_ex * sqrt(X_var + ep))
 * over the (n_ex·rows·cols, ch) reshape, i.e. per channel over all m = N·spatial values.
 */
export function numpyMlBackwardRef(
  x: ArrayLike<number>,
  dy: ArrayLike<number>,
  shape: readonly number[],
  scaler: ArrayLike<number>,
  ep: number,
): { dX: Float64Array; dScaler: Float64Array; dIntercept: Float64Array } {
  const c = shape[1] ?? 0;
  const s = shape.slice(2).reduce((a, b) => a * b, 1);
  const mo = moments(x, shape);
  const nEx = mo.m;
  const chOf = (i: number): number => Math.floor(i / s) % c;
  const norm = new Float64Array(x.length);
  const dN = new Float64Array(x.length);
  const dScaler = new Float64Array(c);
  const dIntercept = new Float64Array(c);
  const sumDN = new Float64Array(c);
  const sumDNN = new Float64Array(c);
  for (let i = 0; i < x.length; i++) {
    const ch = chOf(i);
    norm[i] = ((x[i] as number) - (mo.mean[ch] as number)) / Math.sqrt((mo.popVar[ch] as number) + ep);
    dN[i] = (dy[i] as number) * (scaler[ch] as number);
    dIntercept[ch] = (dIntercept[ch] as number) + (dy[i] as number);
    dScaler[ch] = (dScaler[ch] as number) + (dy[i] as number) * (norm[i] as number);
    sumDN[ch] = (sumDN[ch] as number) + (dN[i] as number);
    sumDNN[ch] = (sumDNN[ch] as number) + (dN[i] as number) * (norm[i] as number);
  }
  const dX = new Float64Array(x.length);
  for (let i = 0; i < x.length; i++) {
    const ch = chOf(i);
    dX[i] =
      (nEx * (dN[i] as number) - (sumDN[ch] as number) - (norm[i] as number) * (sumDNN[ch] as number)) /
      (nEx * Math.sqrt((mo.popVar[ch] as number) + ep));
  }
  return { dX, dScaler, dIntercept };
}
