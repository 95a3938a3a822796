/**
 * Finite-difference gradient check of the CPU backward (src/batch-norm/cpu/cpu-backward.ts), run wholly
 * in float64: the analytic gradients of L = Σ dy · batch_norm(x, w, b) must match central
 * differences of a float64 forward written here from the definition, for batch statistics
 * (training, and eval without running statistics) and running statistics (eval), every rank,
 * both memory layouts, affine on and off.
 */
import { describe, expect, it } from 'vitest';
import { cpuBackward } from '../src/batch-norm/cpu/cpu-backward.js';
import { geometryOf } from '../src/batch-norm/geometry.js';
import type { Layout } from '../src/index.js';
import { gaussian, rng } from './helpers/backends.js';

/** Logical (N, C, ...) row-major → memory order of `layout`, in float64. */
function toMemory(logical: Float64Array, shape: readonly number[], layout: Layout): Float64Array {
  if (layout === 'channels_first' || shape.length < 3) return logical.slice();
  const [n = 0, c = 0] = shape;
  const s = logical.length / (n * c);
  const out = new Float64Array(logical.length);
  for (let i = 0; i < n; i++)
    for (let ch = 0; ch < c; ch++) for (let k = 0; k < s; k++) out[(i * s + k) * c + ch] = logical[(i * c + ch) * s + k] as number;
  return out;
}

function toLogical(memory: Float64Array, shape: readonly number[], layout: Layout): Float64Array {
  if (layout === 'channels_first' || shape.length < 3) return memory.slice();
  const [n = 0, c = 0] = shape;
  const s = memory.length / (n * c);
  const out = new Float64Array(memory.length);
  for (let i = 0; i < n; i++)
    for (let ch = 0; ch < c; ch++) for (let k = 0; k < s; k++) out[(i * c + ch) * s + k] = memory[(i * s + k) * c + ch] as number;
  return out;
}

interface Problem {
  readonly shape: number[];
  readonly x: Float64Array; // logical order
  readonly dy: Float64Array;
  readonly weight: Float64Array | null;
  readonly bias: Float64Array | null;
  /** null: batch statistics; else the running mean / variance (constants). */
  readonly running: { mean: Float64Array; var: Float64Array } | null;
  readonly eps: number;
}

/** L = Σ dy · y with y from the definition of batch norm, in float64, logical order. */
function loss(p: Problem, x: Float64Array, weight: Float64Array | null, bias: Float64Array | null): number {
  const [n = 0, c = 0] = p.shape;
  const s = x.length / (n * c);
  let total = 0;
  for (let ch = 0; ch < c; ch++) {
    let mean: number;
    let variance: number;
    if (p.running) {
      mean = p.running.mean[ch] as number;
      variance = p.running.var[ch] as number;
    } else {
      let sum = 0;
      for (let i = 0; i < n; i++) for (let k = 0; k < s; k++) sum += x[(i * c + ch) * s + k] as number;
      mean = sum / (n * s);
      let sq = 0;
      for (let i = 0; i < n; i++) for (let k = 0; k < s; k++) sq += ((x[(i * c + ch) * s + k] as number) - mean) ** 2;
      variance = sq / (n * s);
    }
    const invstd = 1 / Math.sqrt(variance + p.eps);
    const w = weight ? (weight[ch] as number) : 1;
    const b = bias ? (bias[ch] as number) : 0;
    for (let i = 0; i < n; i++)
      for (let k = 0; k < s; k++) {
        const j = (i * c + ch) * s + k;
        total += (p.dy[j] as number) * (((x[j] as number) - mean) * invstd * w + b);
      }
  }
  return total;
}

/** Central differences of `loss` along every coordinate of `v` (modified in place and restored). */
function numericGrad(f: () => number, v: Float64Array, h: number): Float64Array {
  const g = new Float64Array(v.length);
  for (let i = 0; i < v.length; i++) {
    const keep = v[i] as number;
    v[i] = keep + h;
    const up = f();
    v[i] = keep - h;
    const down = f();
    v[i] = keep;
    g[i] = (up - down) / (2 * h);
  }
  return g;
}

function analytic(p: Problem, layout: Layout): { gradInput: Float64Array; gradWeight: Float64Array; gradBias: Float64Array } {
  const [, c = 0] = p.shape;
  const g = geometryOf(p.shape, layout);
  let mean: Float64Array;
  let invstd: Float64Array;
  if (p.running) {
    mean = p.running.mean;
    invstd = p.running.var.map((v) => 1 / Math.sqrt(v + p.eps));
  } else {
    // The forward's saved statistics, as cpu.ts computes them (two passes, float64).
    const [n = 0] = p.shape;
    const s = p.x.length / (n * c);
    mean = new Float64Array(c);
    invstd = new Float64Array(c);
    for (let ch = 0; ch < c; ch++) {
      let sum = 0;
      for (let i = 0; i < n; i++) for (let k = 0; k < s; k++) sum += p.x[(i * c + ch) * s + k] as number;
      const m = sum / (n * s);
      let sq = 0;
      for (let i = 0; i < n; i++) for (let k = 0; k < s; k++) sq += ((p.x[(i * c + ch) * s + k] as number) - m) ** 2;
      mean[ch] = m;
      invstd[ch] = 1 / Math.sqrt(sq / (n * s) + p.eps);
    }
  }
  const out = { gradInput: new Float64Array(p.x.length), gradWeight: new Float64Array(c), gradBias: new Float64Array(c) };
  cpuBackward(
    {
      x: toMemory(p.x, p.shape, layout),
      dy: toMemory(p.dy, p.shape, layout),
      mean,
      invstd,
      weight: p.weight,
      useBatchStats: p.running === null,
    },
    g,
    out,
  );
  return { ...out, gradInput: toLogical(out.gradInput, p.shape, layout) };
}

/**
 * Tolerance: |numeric − analytic| ≤ 1e-6 · (1 + max|analytic|). Central differences with h = 1e-5
 * on O(1) data have truncation error ~h²·|L'''| ≈ 1e-9 and rounding error ~1e-16·Σ|dy·y| / h ≈ 1e-10
 * at these sizes, so 1e-6 is 1000× above the noise yet far below any formula mistake (a missing
 * term changes a gradient by O(1)).
 */
const H = 1e-5;
const TOL = 1e-6;

function expectClose(what: string, numeric: Float64Array, exact: Float64Array): void {
  let scale = 0;
  for (const v of exact) scale = Math.max(scale, Math.abs(v));
  for (let i = 0; i < exact.length; i++) {
    const err = Math.abs((numeric[i] as number) - (exact[i] as number));
    if (!(err <= TOL * (1 + scale))) throw new Error(`${what}[${i}]: numeric ${numeric[i]}, analytic ${exact[i]}, |err| ${err}`);
  }
  expect(exact.some((v) => v !== 0)).toBe(true);
}

const SHAPES: number[][] = [
  [5, 3],
  [3, 2, 4],
  [2, 3, 2, 3],
  [2, 2, 2, 1, 3],
];
const MODES = ['batch', 'running'] as const;

describe('finite-difference gradient check of the CPU backward (float64)', () => {
  for (const shape of SHAPES) {
    for (const mode of MODES) {
      for (const affine of [true, false]) {
        it(`${mode} statistics, shape [${shape.join(', ')}], affine ${affine}`, () => {
          const next = rng(shape.reduce((a, b) => a * 31 + b, 7) + (affine ? 1 : 0) + (mode === 'running' ? 2 : 0));
          const size = shape.reduce((a, b) => a * b, 1);
          const c = shape[1] ?? 0;
          const p: Problem = {
            shape,
            x: Float64Array.from({ length: size }, () => 0.5 + gaussian(next)),
            dy: Float64Array.from({ length: size }, () => gaussian(next)),
            weight: affine ? Float64Array.from({ length: c }, () => 0.5 + next()) : null,
            bias: affine ? Float64Array.from({ length: c }, () => gaussian(next)) : null,
            running:
              mode === 'running'
                ? {
                    mean: Float64Array.from({ length: c }, () => gaussian(next)),
                    var: Float64Array.from({ length: c }, () => 0.5 + next()),
                  }
                : null,
            eps: mode === 'running' ? 1e-5 : 0.1,
          };
          const x = p.x.slice();
          const w = p.weight ? p.weight.slice() : null;
          const b = p.bias ? p.bias.slice() : null;
          const f = (): number => loss(p, x, w, b);
          const numX = numericGrad(f, x, H);
          for (const layout of ['channels_first', 'channels_last'] as const) {
            const a = analytic(p, layout);
            expectClose(`${layout} gradInput`, numX, a.gradInput);
            if (w && b) {
              expectClose(`${layout} gradWeight`, numericGrad(f, w, H), a.gradWeight);
              expectClose(`${layout} gradBias`, numericGrad(f, b, H), a.gradBias);
            } else {
              // Without affine the gradients are those of an implicit weight 1 and bias 0.
              const ones = new Float64Array(c).fill(1);
              const zeros = new Float64Array(c);
              const g = (): number => loss(p, x, ones, zeros);
              expectClose(`${layout} gradWeight (implicit)`, numericGrad(g, ones, H), a.gradWeight);
              expectClose(`${layout} gradBias (implicit)`, numericGrad(g, zeros, H), a.gradBias);
            }
          }
        });
      }
    }
  }

  it('batch statistics: gradInput sums to zero per channel and is orthogonal to x − mean', () => {
    // The two invariants of the training-mode gradient (it is projected off the mean and the
    // normalized direction), a check independent of finite differences. Orthogonality is exact only
    // for eps = 0 (otherwise Σ dx·(x − mean) = gs·Σdy·(x − mean)·eps / (var + eps)), so eps is 0 here.
    const shape = [4, 3, 5];
    const next = rng(99);
    const size = 60;
    const x = Float64Array.from({ length: size }, () => 3 + 2 * gaussian(next));
    const dy = Float64Array.from({ length: size }, () => gaussian(next));
    const p: Problem = { shape, x, dy, weight: Float64Array.from([0.5, 2, -1]), bias: null, running: null, eps: 0 };
    const { gradInput } = analytic(p, 'channels_first');
    for (let ch = 0; ch < 3; ch++) {
      let sum = 0;
      let mean = 0;
      for (let i = 0; i < 4; i++) for (let k = 0; k < 5; k++) mean += x[(i * 3 + ch) * 5 + k] as number;
      mean /= 20;
      let dot = 0;
      let scale = 0;
      for (let i = 0; i < 4; i++)
        for (let k = 0; k < 5; k++) {
          const j = (i * 3 + ch) * 5 + k;
          sum += gradInput[j] as number;
          dot += (gradInput[j] as number) * ((x[j] as number) - mean);
          scale += Math.abs(gradInput[j] as number);
        }
      expect(Math.abs(sum)).toBeLessThan(1e-12 * (1 + scale));
      expect(Math.abs(dot)).toBeLessThan(1e-11 * (1 + scale));
    }
  });
});
