/**
 * C = 4,194,304 channels on a [2, C] batch: one invocation per channel in the per-channel stages
 * (finalize, reduce_finalize, the evaluation constants) needs 65,536 workgroups of 64, one more
 * than maxComputeWorkgroupsPerDimension allows, so every such grid must be folded over x and y.
 * Training forward, backward and evaluation forward, both backends, against the float64 formulas:
 *   mean = (x0 + x1) / 2, biased var = ((x0 − x1) / 2)², invstd = 1 / sqrt(var + eps),
 *   y = (x − mean)·invstd, running_mean = 0.1·mean, running_var = 0.9 + 0.1·(2·var),
 *   grad_bias = Σdy, grad_weight = Σdy·ŷ, grad_input = invstd·(dy − mean(dy) − ŷ·mean(dy·ŷ))
 * (torch.nn.BatchNorm1d's documentation; the backward as in aten/src/ATen/native/Normalization.cpp,
 * batch_norm_backward_cpu_template), and in evaluation y = (x − running_mean)·invstd(running_var).
 *
 * Tolerances: y 1e-5 + 1e-5·|ref| and running statistics 1e-6 + 1e-5·|ref|, as in
 * test/helpers/run-case.ts; gradients with backward.test.ts's bounds at its ρ (1e-5 WebGPU, 1e-6
 * CPU): grad_bias ρ·Σ|dy|, grad_weight ρ·(Σ|dy| + Σ|dy·ŷ|), grad_input
 * ρ·invstd·(|dy| + (1 + |ŷ|)·(mean|dy| + mean|dy·ŷ|)).
 */
import { describe, expect, it } from 'vitest';
import { BatchNorm1d, type BatchNormContext, type Tensor } from '../src/index.js';
import { mergeGradSums, mergeMoments, SyncBatchNorm } from '../src/sync/index.js';
import { BACKENDS, caseCounter, contextFor, gaussian, rng, type Backend } from './helpers/backends.js';

const C = 4_194_304;
const EPS = 1e-5;
const RHO: Record<Backend, number> = { webgpu: 1e-5, cpu: 1e-6 };
const count = caseCounter('4,194,304 channels on [2, C]');

function sample(seed: number): Float32Array {
  const next = rng(seed);
  const out = new Float32Array(2 * C);
  for (let i = 0; i < out.length; i++) out[i] = gaussian(next);
  return out;
}

/** First index where |got − ref| > tol(i), or −1; NaN never passes. */
function firstMismatch(got: Float32Array, ref: (i: number) => number, tol: (i: number) => number, length: number): number {
  for (let i = 0; i < length; i++) if (!(Math.abs((got[i] as number) - ref(i)) <= tol(i))) return i;
  return -1;
}

/** What one training step on [2, C] left: its output, running statistics and a backward. */
interface TrainingStep {
  readonly y: Tensor;
  readonly runningMean: Tensor;
  readonly runningVar: Tensor;
  readonly backward: (dy: Tensor) => Promise<{ gradInput: Tensor | null; gradWeight: Tensor | null; gradBias: Tensor | null }>;
}

/** Checks a training step on `xs` and its backward of `dys` against the float64 formulas above; returns the running statistics. */
async function checkTrainingStep(
  ctx: BatchNormContext,
  backend: Backend,
  xs: Float32Array,
  dys: Float32Array,
  r: TrainingStep,
): Promise<{ rm: Float32Array; rv: Float32Array }> {
  // float64 statistics per channel: rows are x[c] and x[C + c].
  const mean = new Float64Array(C);
  const invstd = new Float64Array(C);
  const variance = new Float64Array(C);
  for (let c = 0; c < C; c++) {
    const a = xs[c] as number;
    const b = xs[C + c] as number;
    mean[c] = (a + b) / 2;
    variance[c] = ((a - b) / 2) ** 2;
    invstd[c] = 1 / Math.sqrt((variance[c] as number) + EPS);
  }
  const yhat = (i: number): number => ((xs[i] as number) - (mean[i % C] as number)) * (invstd[i % C] as number);
  const badY = firstMismatch(await r.y.readFloat32(), yhat, (i) => 1e-5 + 1e-5 * Math.abs(yhat(i)), 2 * C);
  expect(badY, `y[${badY}], expected ${yhat(badY)}`).toBe(-1);

  const rm = await r.runningMean.readFloat32();
  const rv = await r.runningVar.readFloat32();
  const rmRef = (c: number): number => 0.1 * (mean[c] as number);
  const rvRef = (c: number): number => 0.9 + 0.1 * 2 * (variance[c] as number);
  const badM = firstMismatch(rm, rmRef, (c) => 1e-6 + 1e-5 * Math.abs(rmRef(c)), C);
  expect(badM, `running_mean[${badM}]`).toBe(-1);
  const badV = firstMismatch(rv, rvRef, (c) => 1e-6 + 1e-5 * Math.abs(rvRef(c)), C);
  expect(badV, `running_var[${badV}]`).toBe(-1);

  const g = await r.backward(ctx.tensor(dys, [2, C]));
  const gi = await g.gradInput?.readFloat32();
  const gw = await g.gradWeight?.readFloat32();
  const gb = await g.gradBias?.readFloat32();
  if (!gi || !gw || !gb) throw new Error('missing gradients');
  const rho = RHO[backend];
  const dy = (i: number): number => dys[i] as number;
  const sumDy = (c: number): number => dy(c) + dy(C + c);
  const sumDyY = (c: number): number => dy(c) * yhat(c) + dy(C + c) * yhat(C + c);
  const sumAbsDy = (c: number): number => Math.abs(dy(c)) + Math.abs(dy(C + c));
  const sumAbsDyY = (c: number): number => Math.abs(dy(c) * yhat(c)) + Math.abs(dy(C + c) * yhat(C + c));
  const badB = firstMismatch(gb, sumDy, (c) => rho * sumAbsDy(c), C);
  expect(badB, `grad_bias[${badB}]`).toBe(-1);
  const badW = firstMismatch(gw, sumDyY, (c) => rho * (sumAbsDy(c) + sumAbsDyY(c)), C);
  expect(badW, `grad_weight[${badW}]`).toBe(-1);
  const gxRef = (i: number): number => {
    const c = i % C;
    return (invstd[c] as number) * (dy(i) - sumDy(c) / 2 - yhat(i) * (sumDyY(c) / 2));
  };
  const gxTol = (i: number): number => {
    const c = i % C;
    return rho * (invstd[c] as number) * (Math.abs(dy(i)) + (1 + Math.abs(yhat(i))) * (sumAbsDy(c) / 2 + sumAbsDyY(c) / 2));
  };
  const badX = firstMismatch(gi, gxRef, gxTol, 2 * C);
  expect(badX, `grad_input[${badX}] = ${gi[badX]}, expected ${gxRef(badX)}`).toBe(-1);

  return { rm, rv };
}

describe.each(BACKENDS)('BatchNorm1d(4194304) on %s', (backend) => {
  it('trains, differentiates and evaluates [2, 4194304]', async () => {
    const ctx = await contextFor(backend);
    try {
      const xs = sample(7);
      const dys = sample(8);
      const bn = new BatchNorm1d(ctx, C);
      const x = ctx.tensor(xs, [2, C]);
      const y = bn.forward(x);
      if (!bn.runningMean || !bn.runningVar) throw new Error('no running statistics');
      const { rm, rv } = await checkTrainingStep(ctx, backend, xs, dys, {
        y,
        runningMean: bn.runningMean,
        runningVar: bn.runningVar,
        backward: async (dy) => bn.backward(dy),
      });
      // Evaluation: the per-channel constants come from the (float32) running statistics.
      const yEval = await bn.eval().forward(x).readFloat32();
      const evalRef = (i: number): number => ((xs[i] as number) - (rm[i % C] as number)) / Math.sqrt((rv[i % C] as number) + EPS);
      const badE = firstMismatch(yEval, evalRef, (i) => 1e-5 + 1e-5 * Math.abs(evalRef(i)), 2 * C);
      expect(badE, `eval y[${badE}] = ${yEval[badE]}, expected ${evalRef(badE)}`).toBe(-1);
      await ctx.sync();
      bn.destroy();
      count(backend);
    } finally {
      ctx.destroy();
    }
    // 8.4M values with float64 references in JS, on SwiftShader sharing a small CI machine: well
    // past the default 120 s limit when the machine is busy. Nothing here asserts on time.
  }, 600_000);
});

// SyncBatchNorm's per-channel stages (moments merge, forward and backward constants) fold their
// grids the same way: one shard holding the whole batch equals the formulas above.
describe.each(BACKENDS)('SyncBatchNorm(4194304) on %s', (backend) => {
  it('trains and differentiates [2, 4194304] as one shard', async () => {
    const ctx = await contextFor(backend);
    try {
      const xs = sample(7);
      const dys = sample(8);
      const bn = new SyncBatchNorm(ctx, C);
      const x = ctx.tensor(xs, [2, C]);
      const y = bn.forward(x, mergeMoments([await bn.momentsPartial(x)]));
      if (!bn.runningMean || !bn.runningVar) throw new Error('no running statistics');
      await checkTrainingStep(ctx, backend, xs, dys, {
        y,
        runningMean: bn.runningMean,
        runningVar: bn.runningVar,
        backward: async (dy) => bn.backward(dy, mergeGradSums([await bn.gradPartial(dy)])),
      });
      await ctx.sync();
      bn.destroy();
      count(backend);
    } finally {
      ctx.destroy();
    }
  }, 600_000);
});
