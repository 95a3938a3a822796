/**
 * Runs one PyTorch reference case (see torch-reference.ts) through this library and compares every
 * step with PyTorch's float64 results, with tolerances stated per quantity below.
 */
import {
  ArgumentError,
  BatchNorm1d,
  BatchNorm2d,
  BatchNorm3d,
  type BatchNormError,
  InsufficientValuesError,
  ShapeError,
  batchNorm,
  type BatchNorm,
  type BatchNormContext,
  type Layout,
  type Tensor,
} from '../../src/index.js';
import { channelOf, checkClose, fromLayout, toLayout } from './backends.js';
import type { TorchCase, TorchResult, TorchState } from './torch-reference.js';

/**
 * Tolerances, against float64 PyTorch on the same float32 inputs:
 * - output: 1e-5 + 1e-5·|ref|. Outputs are O(1) (unit variance times weight); float32 rounding of
 *   the output alone is 6e-8·|ref|, and the kernels' statistics are exact to a few ulp, so this
 *   leaves two orders of magnitude for summation order while catching any real bug. It is also
 *   far inside the 2e-4 required on offset data (mean 1e4, std 0.1).
 * - plus, in eval with running statistics only: 4 ulp(running_mean)·|weight|·invstd per channel,
 *   because running_mean is float32 state in both PyTorch and here (the float64 reference keeps it
 *   in float64), and each update rounds it once.
 * - running_mean: 1e-6 + 2e-6·|ref|; running_var: 1e-6 + 1e-5·|ref| (an unbiased variance from a
 *   float32 merge, a few ulp per step over ≤ 5 steps); num_batches_tracked: exact.
 */
export const OUTPUT_ABS = 1e-5;
export const OUTPUT_REL = 1e-5;

function ulp32(v: number): number {
  const a = Math.abs(v);
  if (a === 0) return 2 ** -149;
  return 2 ** (Math.floor(Math.log2(a)) - 23);
}

export interface StepReport {
  /** Normalized with running statistics (eval with tracking). */
  readonly usedRunning: boolean;
  readonly outputErr: number;
  readonly runningErr: number;
}

export interface CaseReport {
  readonly steps: StepReport[];
  /** Set when the case expected a PyTorch error and we threw the matching typed error. */
  readonly rejected: string | null;
}

function moduleFor(ctx: BatchNormContext, c: TorchCase): BatchNorm {
  const options = {
    eps: c.eps,
    momentum: c.momentum,
    affine: c.affine,
    trackRunningStats: c.track_running_stats,
  };
  switch (c.module) {
    case 'BatchNorm1d':
      return new BatchNorm1d(ctx, c.num_features, options);
    case 'BatchNorm2d':
      return new BatchNorm2d(ctx, c.num_features, options);
    case 'BatchNorm3d':
      return new BatchNorm3d(ctx, c.num_features, options);
    default:
      throw new Error(`not a module case: ${c.module}`);
  }
}

/** The library error class that corresponds to a PyTorch error on this step. */
function expectedErrorClass(message: string): typeof BatchNormError {
  if (message.includes('more than 1 value per channel')) return InsufficientValuesError;
  if (message.includes('must be defined in evaluation mode')) return ArgumentError;
  return ShapeError;
}

async function snapshot(bn: BatchNorm | null, fn: FunctionalState | null): Promise<string> {
  if (bn) return JSON.stringify(await bn.stateDict(), (_k, v: unknown) => (v instanceof Float32Array ? Array.from(v) : v));
  if (fn?.runningMean && fn.runningVar)
    return JSON.stringify([Array.from(await fn.runningMean.read()), Array.from(await fn.runningVar.read())]);
  return '';
}

interface FunctionalState {
  weight: Tensor | null;
  bias: Tensor | null;
  runningMean: Tensor | null;
  runningVar: Tensor | null;
}

/**
 * Runs `c` step by step on `ctx` with inputs in `layout`, checks each step against `r`, and
 * returns the largest errors. Throws with a precise message on the first mismatch.
 */
export async function runCase(ctx: BatchNormContext, c: TorchCase, r: TorchResult, layout: Layout): Promise<CaseReport> {
  const steps: StepReport[] = [];
  let bn: BatchNorm | null = null;
  let fn: FunctionalState | null = null;
  const init = c.init ?? {};
  const C = c.num_features;
  const vec = (v: number[] | undefined, fill: number, label: string): Tensor =>
    ctx.tensor(Float32Array.from(v ?? new Array<number>(C).fill(fill)), [C], { label });
  try {
    if (c.module === 'functional') {
      fn = {
        weight: c.affine ? vec(init.weight, 1, 'weight') : null,
        bias: c.affine ? vec(init.bias, 0, 'bias') : null,
        runningMean: c.track_running_stats ? vec(init.running_mean, 0, 'running_mean') : null,
        runningVar: c.track_running_stats ? vec(init.running_var, 1, 'running_var') : null,
      };
    } else {
      bn = moduleFor(ctx, c);
      if (c.init) {
        const sd: Record<string, number[] | number> = {};
        if (c.affine) {
          sd['weight'] = init.weight ?? new Array<number>(C).fill(1);
          sd['bias'] = init.bias ?? new Array<number>(C).fill(0);
        }
        if (c.track_running_stats) {
          sd['running_mean'] = init.running_mean ?? new Array<number>(C).fill(0);
          sd['running_var'] = init.running_var ?? new Array<number>(C).fill(1);
          sd['num_batches_tracked'] = init.num_batches_tracked ?? 0;
        }
        bn.loadStateDict(sd);
      }
    }

    for (let k = 0; k < c.steps.length; k++) {
      const step = c.steps[k];
      if (!step) break;
      const expected = r.steps[k];
      const stepLayout: Layout = step.shape.length >= 3 ? layout : 'channels_first';
      const x = ctx.tensor(toLayout(step.input, step.shape, stepLayout), step.shape, { layout: stepLayout, label: 'input' });
      try {
        if (!expected) {
          // PyTorch raised on this step: we must throw the matching typed error and change nothing.
          if (!r.error) throw new Error(`${c.name}: reference has no step ${k} and no error`);
          const before = await snapshot(bn, fn);
          let thrown: unknown = null;
          try {
            if (bn) bn.train(step.training).forward(x);
            else if (fn) batchNorm(ctx, x, { ...fn, training: step.training, eps: c.eps, momentum: c.momentum ?? 0.1 });
          } catch (err) {
            thrown = err;
          }
          const cls = expectedErrorClass(r.error.message);
          if (!(thrown instanceof cls)) {
            throw new Error(
              `${c.name} step ${k}: PyTorch raised ${r.error.type}: ${r.error.message}; expected ${cls.name}, got ${String(thrown)}`,
            );
          }
          const after = await snapshot(bn, fn);
          if (before !== after) throw new Error(`${c.name} step ${k}: state changed by a rejected call`);
          return { steps, rejected: `${cls.name}: ${(thrown as Error).message}` };
        }

        const y = bn
          ? bn.train(step.training).forward(x)
          : batchNorm(ctx, x, { ...(fn as FunctionalState), training: step.training, eps: c.eps, momentum: c.momentum ?? 0.1 });
        const out = fromLayout(await y.read(), step.shape, stepLayout);
        y.destroy();
        const state: TorchState = expected.state;
        const usesRunning = !step.training && c.track_running_stats;
        let runningMean: Float32Array | null = null;
        if (bn?.runningMean) runningMean = await bn.runningMean.read();
        else if (fn?.runningMean) runningMean = await fn.runningMean.readFloat32();
        let runningVar: Float32Array | null = null;
        if (bn?.runningVar) runningVar = await bn.runningVar.read();
        else if (fn?.runningVar) runningVar = await fn.runningVar.readFloat32();

        const weights = state.weight;
        const outCheck = checkClose(`${c.name} step ${k} output`, out, expected.output, (i) => {
          let tol = OUTPUT_ABS + OUTPUT_REL * Math.abs(expected.output[i] ?? 0);
          if (usesRunning && runningMean && runningVar) {
            const ch = channelOf(i, step.shape);
            const invstd = 1 / Math.sqrt((runningVar[ch] ?? 0) + c.eps);
            tol += 4 * ulp32(runningMean[ch] ?? 0) * Math.abs(weights?.[ch] ?? 1) * invstd;
          }
          return tol;
        });
        if (outCheck.failure) throw new Error(`[${ctx.backend} ${layout}] ${outCheck.failure}`);

        let runningErr = 0;
        if (state.running_mean && state.running_var) {
          if (!runningMean || !runningVar) throw new Error(`${c.name}: reference has running stats, library has none`);
          const rm = checkClose(
            `${c.name} step ${k} running_mean`,
            runningMean,
            state.running_mean,
            (i) => 1e-6 + 2e-6 * Math.abs(state.running_mean?.[i] ?? 0),
          );
          if (rm.failure) throw new Error(`[${ctx.backend} ${layout}] ${rm.failure}`);
          const rv = checkClose(
            `${c.name} step ${k} running_var`,
            runningVar,
            state.running_var,
            (i) => 1e-6 + 1e-5 * Math.abs(state.running_var?.[i] ?? 0),
          );
          if (rv.failure) throw new Error(`[${ctx.backend} ${layout}] ${rv.failure}`);
          runningErr = Math.max(rm.maxErr, rv.maxErr);
        } else if (runningMean) {
          throw new Error(`${c.name}: library has running stats, reference has none`);
        }
        if (bn && state.num_batches_tracked !== null && bn.numBatchesTracked !== state.num_batches_tracked) {
          throw new Error(`${c.name} step ${k}: num_batches_tracked ${bn.numBatchesTracked}, expected ${state.num_batches_tracked}`);
        }
        steps.push({ usedRunning: usesRunning, outputErr: outCheck.maxErr, runningErr });
      } finally {
        x.destroy();
      }
    }
    await ctx.sync();
    return { steps, rejected: null };
  } finally {
    bn?.destroy();
    if (fn) for (const t of Object.values(fn)) (t as Tensor | null)?.destroy();
  }
}
