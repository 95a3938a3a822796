/**
 * Backward pass: gradients against PyTorch autograd (float64 on the same float32 inputs), from the
 * committed fixtures and from a live differential over random configurations, on both backends and
 * both layouts; typed errors that change nothing; output masks that skip work; every kernel variant
 * bound exactly as its WGSL declares; no buffer growth in steady state.
 */
import { shaderSpecs } from '../src/gpu/shader-sources.js';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import {
  ArgumentError,
  BackwardStateError,
  BatchNorm1d,
  BatchNorm2d,
  BatchNorm3d,
  DestroyedError,
  ShapeError,
  batchNormBackward,
  createContext,
  type BackwardResult,
  type BatchNorm,
  type BatchNormContext,
  type Layout,
  type OutputMask,
  type Tensor,
} from '../src/index.js';
import { cpuBackward } from '../src/batch-norm/cpu/cpu-backward.js';
import { geometryOf } from '../src/batch-norm/geometry.js';
import { BindGroupCache } from '../src/gpu/object-caches.js';
import { reflectShader } from '../src/gpu/reflect.js';
import { BACKENDS, caseCounter, contextFor, fromLayout, gaussian, rng, toLayout, type Backend } from './helpers/backends.js';
import {
  loadFixture,
  runTorchReference,
  torchAvailable,
  type TorchCase,
  type TorchResult,
  type TorchState,
} from './helpers/torch-reference.js';

/**
 * Tolerances, per quantity, against PyTorch's float64 autograd on the same float32 inputs.
 *
 * Write ŷ = (x − mean)·invstd (the normalized input, O(1)), gs = invstd·|weight|, and per channel
 * A = mean|dy|, B = mean|dy·ŷ|. The gradients are
 *   grad_bias = Σ dy,  grad_weight = Σ dy·ŷ,  grad_input = gs·(dy − mean(dy) − ŷ·mean(dy·ŷ))
 * (running statistics: grad_input = gs·dy). Each is bounded by ρ times the sum of the magnitudes
 * of its terms, which stays meaningful when the result itself cancels to ~0:
 *   grad_bias:   ρ·Σ|dy|                grad_weight: ρ·(Σ|dy| + Σ|dy·ŷ|)
 *   grad_input:  ρ·gs·(|dy| + (1 + |ŷ|)·(A + B))   (running statistics: ρ·gs·|dy|)
 * The Σ|dy| term of grad_weight (and the A·|ŷ| one of grad_input) carries the error of the mean
 * itself: ŷ is only as exact as the forward's statistics, which the forward tests hold to 1e-5.
 *
 * ρ on WebGPU = 1e-5 (≈ 170 ulp(1)/2): every sum is blocked, ≤ 32 float32 terms per invocation then
 * ≤ 64 partials per channel at the sizes tested here, whose worst-case error is (32 + 64)·2^-24 =
 * 5.7e-6 of the sum of magnitudes, plus a few roundings per element.
 * ρ on the CPU = 1e-6: float64 accumulation and one final rounding to float32 (2^-24 = 6e-8 of the
 * result) — 16× margin, and 10× tighter than WebGPU.
 *
 * The statistics handed to the kernels are not always the reference's float64 ones: a module
 * stores float32 running statistics (so does PyTorch's float32 module; the float64 reference keeps
 * float64 ones), and the functional API takes float32 saveMean/saveInvstd (as ATen does). What that
 * alone changes is no kernel error, so it is computed exactly — B64(used stats) − B64(reference
 * stats), with the float64 formula B64 — and the reference is shifted by it before comparing with
 * the tolerance above. The shift is zero for module training-mode backward; the raw error against
 * PyTorch is reported as well.
 */
const RHO: Record<Backend, number> = { webgpu: 1e-5, cpu: 1e-6 };

const count = caseCounter('backward');

type Quantity = 'gradInput' | 'gradWeight' | 'gradBias';
const QUANTITIES: readonly Quantity[] = ['gradInput', 'gradWeight', 'gradBias'];

/**
 * Largest errors seen, per backend and quantity: `raw` = |got − PyTorch| (absolute, and relative
 * to max|ref| of that tensor), `ratio` = |got − shifted reference| / tolerance.
 */
interface Worst {
  raw: number;
  rawRel: number;
  ratio: number;
}
const blank = (): Record<Quantity, Worst> => ({
  gradInput: { raw: 0, rawRel: 0, ratio: 0 },
  gradWeight: { raw: 0, rawRel: 0, ratio: 0 },
  gradBias: { raw: 0, rawRel: 0, ratio: 0 },
});
const worst: Record<Backend, Record<Quantity, Worst>> = { webgpu: blank(), cpu: blank() };
/** The same, for the offset-data (mean 1e4, std 0.1) configurations only. */
const worstOffset: Record<Backend, Record<Quantity, Worst>> = { webgpu: blank(), cpu: blank() };

afterAll(() => {
  const line = (w: Record<Quantity, Worst>): string =>
    QUANTITIES.map(
      (q) => `${q} ${w[q].raw.toExponential(2)} (${w[q].rawRel.toExponential(2)}·max|ref|; ${(100 * w[q].ratio).toFixed(1)}% of tol)`,
    ).join('; ');
  for (const b of BACKENDS) {
    console.log(`[backward max |err| vs PyTorch] ${b}: ${line(worst[b])}`);
    console.log(`[backward max |err| vs PyTorch, offset data] ${b}: ${line(worstOffset[b])}`);
  }
});

// ---------------------------------------------------------------- float64 helpers

interface Stats64 {
  readonly mean: Float64Array;
  readonly invstd: Float64Array;
}

function channelsOf(shape: readonly number[]): { n: number; c: number; s: number } {
  const g = geometryOf(shape, 'channels_first');
  return { n: g.n, c: g.c, s: g.s };
}

/** Exact (float64) batch statistics of logical-order values. */
function batchStats64(x: readonly number[], shape: readonly number[], eps: number): Stats64 {
  const { n, c, s } = channelsOf(shape);
  const mean = new Float64Array(c);
  const invstd = new Float64Array(c);
  for (let ch = 0; ch < c; ch++) {
    let sum = 0;
    for (let i = 0; i < n; i++) for (let k = 0; k < s; k++) sum += x[(i * c + ch) * s + k] as number;
    const m = sum / (n * s);
    let sq = 0;
    for (let i = 0; i < n; i++) for (let k = 0; k < s; k++) sq += ((x[(i * c + ch) * s + k] as number) - m) ** 2;
    mean[ch] = m;
    invstd[ch] = 1 / Math.sqrt(sq / (n * s) + eps);
  }
  return { mean, invstd };
}

function runningStats64(rm: ArrayLike<number>, rv: ArrayLike<number>, eps: number): Stats64 {
  return { mean: Float64Array.from(rm), invstd: Float64Array.from(rv, (v) => 1 / Math.sqrt(v + eps)) };
}

interface Grads64 {
  readonly gradInput: Float64Array;
  readonly gradWeight: Float64Array;
  readonly gradBias: Float64Array;
}

/** The float64 formula on logical-order data. */
function backward64(
  x: readonly number[],
  dy: readonly number[],
  shape: readonly number[],
  st: Stats64,
  weight: ArrayLike<number> | null,
  useBatchStats: boolean,
): Grads64 {
  const { c } = channelsOf(shape);
  const out = { gradInput: new Float64Array(x.length), gradWeight: new Float64Array(c), gradBias: new Float64Array(c) };
  cpuBackward({ x, dy, mean: st.mean, invstd: st.invstd, weight, useBatchStats }, geometryOf(shape, 'channels_first'), out);
  return out;
}

/** Per-element and per-channel tolerance scales (before ρ), see the comment at the top. */
function scales(
  x: readonly number[],
  dy: readonly number[],
  shape: readonly number[],
  st: Stats64,
  weight: ArrayLike<number> | null,
  useBatchStats: boolean,
): Grads64 {
  const { n, c, s } = channelsOf(shape);
  const gradInput = new Float64Array(x.length);
  const gradWeight = new Float64Array(c);
  const gradBias = new Float64Array(c);
  for (let ch = 0; ch < c; ch++) {
    const inv = st.invstd[ch] as number;
    const m = st.mean[ch] as number;
    const gs = inv * Math.abs(weight ? (weight[ch] as number) : 1);
    let sumAbsDy = 0;
    let sumAbsDyY = 0;
    for (let i = 0; i < n; i++)
      for (let k = 0; k < s; k++) {
        const j = (i * c + ch) * s + k;
        const d = Math.abs(dy[j] as number);
        sumAbsDy += d;
        sumAbsDyY += d * Math.abs(((x[j] as number) - m) * inv);
      }
    gradBias[ch] = sumAbsDy;
    gradWeight[ch] = sumAbsDy + sumAbsDyY;
    const a = sumAbsDy / (n * s);
    const b = sumAbsDyY / (n * s);
    for (let i = 0; i < n; i++)
      for (let k = 0; k < s; k++) {
        const j = (i * c + ch) * s + k;
        const yhat = Math.abs(((x[j] as number) - m) * inv);
        const d = Math.abs(dy[j] as number);
        gradInput[j] = useBatchStats ? gs * (d + (1 + yhat) * (a + b)) : gs * d;
      }
  }
  return { gradInput, gradWeight, gradBias };
}

const f32 = (v: ArrayLike<number>): Float32Array => Float32Array.from(v);

// ---------------------------------------------------------------- one step, checked

interface StepSpec {
  readonly name: string;
  readonly backend: Backend;
  readonly layout: Layout;
  readonly shape: readonly number[];
  readonly input: readonly number[];
  readonly gradOutput: readonly number[];
  readonly weight: ArrayLike<number> | null;
  readonly useBatchStats: boolean;
  /** Statistics of the reference (float64). */
  readonly refStats: Stats64;
  /** Statistics the library actually differentiates through (float64 view of what it holds). */
  readonly usedStats: Stats64;
  readonly expected: { gradInput: number[] | null; gradWeight: number[] | null; gradBias: number[] | null };
  readonly offset: boolean;
}

async function checkStep(spec: StepSpec, got: BackwardResult): Promise<void> {
  const rho = RHO[spec.backend];
  const sc = scales(spec.input, spec.gradOutput, spec.shape, spec.refStats, spec.weight, spec.useBatchStats);
  const atRef = backward64(spec.input, spec.gradOutput, spec.shape, spec.refStats, spec.weight, spec.useBatchStats);
  const atUsed = backward64(spec.input, spec.gradOutput, spec.shape, spec.usedStats, spec.weight, spec.useBatchStats);
  for (const q of QUANTITIES) {
    const ref = spec.expected[q];
    const t = got[q];
    const where = `${spec.name} [${spec.backend} ${spec.layout}] ${q}`;
    if (ref === null) {
      expect(t, `${where} should be null`).toBeNull();
      continue;
    }
    if (t === null) throw new Error(`${where} is null but the reference has it`);
    const raw = await t.read();
    const values = q === 'gradInput' ? fromLayout(raw, spec.shape, spec.layout) : Float64Array.from(raw);
    expect(values.length, `${where} length`).toBe(ref.length);
    let maxRef = 0;
    for (const v of ref) maxRef = Math.max(maxRef, Math.abs(v));
    for (let i = 0; i < ref.length; i++) {
      const e = ref[i] as number;
      const a = values[i] as number;
      const shifted = e + ((atUsed[q][i] as number) - (atRef[q][i] as number));
      const tol = rho * (sc[q][i] as number);
      const err = Math.abs(a - shifted);
      if (!(err <= tol)) {
        throw new Error(
          `${where}[${i}]: got ${a}, expected ${shifted} (PyTorch ${e}; |err| ${err.toExponential(3)} > tol ${tol.toExponential(3)})`,
        );
      }
      for (const w of spec.offset ? [worst[spec.backend][q], worstOffset[spec.backend][q]] : [worst[spec.backend][q]]) {
        const raw = Math.abs(a - e);
        w.raw = Math.max(w.raw, raw);
        if (maxRef > 0) w.rawRel = Math.max(w.rawRel, raw / maxRef);
        if (tol > 0) w.ratio = Math.max(w.ratio, err / tol);
      }
    }
    t.destroy();
  }
}

// ---------------------------------------------------------------- one reference case, run

function moduleFor(ctx: BatchNormContext, c: TorchCase): BatchNorm {
  const options = { eps: c.eps, momentum: c.momentum, affine: c.affine, trackRunningStats: c.track_running_stats };
  if (c.module === 'BatchNorm1d') return new BatchNorm1d(ctx, c.num_features, options);
  if (c.module === 'BatchNorm2d') return new BatchNorm2d(ctx, c.num_features, options);
  if (c.module === 'BatchNorm3d') return new BatchNorm3d(ctx, c.num_features, options);
  throw new Error(`not a module: ${c.module}`);
}

function initialState(c: TorchCase): TorchState {
  const C = c.num_features;
  const init = c.init ?? {};
  return {
    weight: c.affine ? (init.weight ?? new Array<number>(C).fill(1)) : null,
    bias: c.affine ? (init.bias ?? new Array<number>(C).fill(0)) : null,
    running_mean: c.track_running_stats ? (init.running_mean ?? new Array<number>(C).fill(0)) : null,
    running_var: c.track_running_stats ? (init.running_var ?? new Array<number>(C).fill(1)) : null,
    num_batches_tracked: null,
  };
}

/**
 * Runs every step of `c` (a module case: forward then backward on one instance; a functional case:
 * batchNormBackward with the statistics of that step) and checks its gradients against `r`.
 */
async function runBackwardCase(
  ctx: BatchNormContext,
  backend: Backend,
  c: TorchCase,
  r: TorchResult,
  layout: Layout,
  offset: boolean,
): Promise<void> {
  expect(r.error, `${c.name}: reference raised`).toBeNull();
  const init = initialState(c);
  const weight = init.weight;
  let bn: BatchNorm | null = null;
  if (c.module !== 'functional') {
    bn = moduleFor(ctx, c);
    if (c.init) {
      const sd: Record<string, number[] | number> = {};
      if (init.weight && init.bias) Object.assign(sd, { weight: init.weight, bias: init.bias });
      if (init.running_mean && init.running_var) {
        Object.assign(sd, {
          running_mean: init.running_mean,
          running_var: init.running_var,
          num_batches_tracked: c.init.num_batches_tracked ?? 0,
        });
      }
      bn.loadStateDict(sd);
    }
  }
  const owned: Tensor[] = [];
  const tensor = (v: ArrayLike<number>, shape: readonly number[], l: Layout, label: string): Tensor => {
    const t = ctx.tensor(f32(v), shape, { layout: l, label });
    owned.push(t);
    return t;
  };
  try {
    for (let k = 0; k < c.steps.length; k++) {
      const step = c.steps[k];
      const expected = r.steps[k];
      if (!step || !expected || !step.grad_output) throw new Error(`${c.name}: step ${k} missing or without grad_output`);
      const before = k > 0 ? (r.steps[k - 1]?.state ?? init) : init;
      const mask: OutputMask = step.output_mask ?? [true, true, true];
      const x = tensor(toLayout(step.input, step.shape, layout), step.shape, layout, 'input');
      const dy = tensor(toLayout(step.grad_output, step.shape, layout), step.shape, layout, 'grad_output');
      const useBatchStats = c.module === 'functional' ? step.training : step.training || !c.track_running_stats;
      let refStats: Stats64;
      if (useBatchStats) refStats = batchStats64(step.input, step.shape, c.eps);
      else {
        if (!before.running_mean || !before.running_var) throw new Error(`${c.name}: eval without running stats`);
        refStats = runningStats64(before.running_mean, before.running_var, c.eps);
      }
      let usedStats = refStats;
      let got: BackwardResult;
      if (bn) {
        bn.train(step.training).forward(x).destroy();
        if (!useBatchStats && bn.runningMean && bn.runningVar) {
          usedStats = runningStats64(await bn.runningMean.read(), await bn.runningVar.read(), c.eps);
        }
        got = bn.backward(dy, { outputMask: mask });
      } else {
        const w = weight ? tensor(weight, [c.num_features], 'channels_first', 'weight') : null;
        const fnMask: OutputMask = [mask[0], mask[1] && c.affine, mask[2] && c.affine];
        if (useBatchStats) {
          const saveMean = f32(refStats.mean);
          const saveInvstd = f32(refStats.invstd);
          usedStats = { mean: Float64Array.from(saveMean), invstd: Float64Array.from(saveInvstd) };
          got = batchNormBackward(
            ctx,
            {
              gradOutput: dy,
              input: x,
              weight: w,
              saveMean: tensor(saveMean, [c.num_features], 'channels_first', 'save_mean'),
              saveInvstd: tensor(saveInvstd, [c.num_features], 'channels_first', 'save_invstd'),
            },
            { outputMask: fnMask },
          );
        } else {
          const rm = f32(before.running_mean ?? []);
          const rv = f32(before.running_var ?? []);
          usedStats = runningStats64(rm, rv, c.eps);
          got = batchNormBackward(
            ctx,
            {
              gradOutput: dy,
              input: x,
              weight: w,
              runningMean: tensor(rm, [c.num_features], 'channels_first', 'running_mean'),
              runningVar: tensor(rv, [c.num_features], 'channels_first', 'running_var'),
              training: false,
              eps: c.eps,
            },
            { outputMask: fnMask },
          );
        }
      }
      await checkStep(
        {
          name: `${c.name} step ${k}`,
          backend,
          layout,
          shape: step.shape,
          input: step.input,
          gradOutput: step.grad_output,
          weight,
          useBatchStats,
          refStats,
          usedStats,
          expected: { gradInput: expected.grad_input, gradWeight: expected.grad_weight, gradBias: expected.grad_bias },
          offset,
        },
        got,
      );
    }
    await ctx.sync();
  } finally {
    bn?.destroy();
    for (const t of owned) t.destroy();
  }
}

// ---------------------------------------------------------------- random configurations

type Kind = 'bn1d-2d' | 'bn1d-3d' | 'bn2d' | 'bn3d' | 'functional';
type Mode = 'train' | 'eval' | 'eval-notrack';

interface Config {
  readonly torch: TorchCase;
  readonly offset: boolean;
  readonly layout: Layout;
}

/**
 * Random configurations, cycling through every kind × mode so each combination appears, with
 * random shapes (spatial sizes that are and are not multiples of 4, C that is and is not, so both
 * the vec4 and the scalar kernels run), affine on/off, random masks, and offset data every 5th.
 */
function randomConfigs(count: number, seed: number): Config[] {
  const next = rng(seed);
  const int = (lo: number, hi: number): number => lo + Math.floor(next() * (hi - lo + 1));
  const kinds: Kind[] = ['bn1d-2d', 'bn1d-3d', 'bn2d', 'bn3d', 'functional'];
  const modes: Mode[] = ['train', 'eval', 'eval-notrack'];
  const out: Config[] = [];
  for (let i = 0; i < count; i++) {
    const kind = kinds[i % kinds.length] as Kind;
    const mode = modes[Math.floor(i / kinds.length) % modes.length] as Mode;
    const offset = i % 5 === 3;
    const C = next() < 0.3 ? 4 * int(1, 2) : int(1, 7);
    let spatial: number[];
    if (kind === 'bn1d-2d') spatial = [];
    else if (kind === 'bn1d-3d') spatial = [next() < 0.4 ? 4 * int(1, 2) : int(1, 7)];
    else if (kind === 'bn2d') spatial = next() < 0.4 ? [int(1, 3), 4] : [int(1, 4), int(1, 4)];
    else if (kind === 'bn3d') spatial = [int(1, 2), int(1, 3), next() < 0.4 ? 4 : int(1, 3)];
    else spatial = Array.from({ length: int(0, 3) }, () => int(1, 3));
    const S = spatial.reduce((a, b) => a * b, 1);
    let N = int(1, 5);
    if (N * S < 2) N = 2;
    const shape = [N, C, ...spatial];
    const size = N * C * S;
    const module =
      kind === 'functional'
        ? 'functional'
        : kind === 'bn1d-2d' || kind === 'bn1d-3d'
          ? 'BatchNorm1d'
          : kind === 'bn2d'
            ? 'BatchNorm2d'
            : 'BatchNorm3d';
    const scale = offset ? 0.1 : Math.exp(gaussian(next));
    const center = offset ? 1e4 : gaussian(next) * 3;
    const input = Array.from({ length: size }, () => Math.fround(center + scale * gaussian(next)));
    const gradOutput = Array.from({ length: size }, () => Math.fround(gaussian(next)));
    const affine = next() < 0.7;
    const track = mode === 'eval' || (mode === 'train' && next() < 0.7);
    const training = mode === 'train' || (kind === 'functional' && mode === 'eval-notrack');
    const init: NonNullable<TorchCase['init']> = {};
    if (affine) {
      init.weight = Array.from({ length: C }, () => Math.fround(gaussian(next)));
      init.bias = Array.from({ length: C }, () => Math.fround(gaussian(next)));
    }
    if (track) {
      init.running_mean = Array.from({ length: C }, () => Math.fround(center + scale * 0.5 * gaussian(next)));
      init.running_var = Array.from({ length: C }, () => Math.fround(scale * scale * (0.5 + next())));
    }
    const r = next();
    const mask: [boolean, boolean, boolean] = r < 0.4 ? [true, true, true] : [next() < 0.5, next() < 0.5, next() < 0.5];
    if (!mask.includes(true)) mask[i % 3] = true;
    out.push({
      offset,
      layout: next() < 0.5 ? 'channels_first' : 'channels_last',
      torch: {
        name: `live${i}_${kind}_${mode}${offset ? '_offset' : ''}_${shape.join('x')}${affine ? '' : '_noaffine'}_m${mask.map(Number).join('')}`,
        module,
        num_features: C,
        eps: next() < 0.7 ? 1e-5 : 1e-3,
        momentum: kind === 'functional' || next() < 0.5 ? 0.1 : null,
        affine,
        track_running_stats: track,
        init,
        steps: [{ training, shape, input, grad_output: gradOutput, output_mask: mask }],
      },
    });
  }
  return out;
}

/**
 * Larger shapes, so that a channel is split over many partials and several workgroups (lanes per
 * channel 94–128, within the ≤ 128 the tolerance analysis above allows): vec4 and scalar reductions
 * in both orders, batch and running statistics.
 */
function largeConfigs(seed: number): Config[] {
  const next = rng(seed);
  const specs: Array<[string, TorchCase['module'], number[], Layout, Mode]> = [
    ['cf4', 'BatchNorm2d', [64, 2, 16, 16], 'channels_first', 'train'],
    ['cf1', 'BatchNorm2d', [40, 3, 9, 11], 'channels_first', 'train'],
    ['cl4', 'BatchNorm2d', [96, 8, 4, 8], 'channels_last', 'train'],
    ['cl1-2d', 'BatchNorm1d', [3000, 3], 'channels_first', 'train'],
    ['cf4-eval', 'BatchNorm2d', [64, 2, 16, 16], 'channels_first', 'eval'],
    ['cl1-offset', 'BatchNorm1d', [3000, 3], 'channels_first', 'train'],
  ];
  return specs.map(([tag, module, shape, layout, mode]) => {
    const size = shape.reduce((a, b) => a * b, 1);
    const C = shape[1] ?? 0;
    const offset = tag.includes('offset');
    const center = offset ? 1e4 : 1.5;
    const scale = offset ? 0.1 : 2;
    return {
      offset,
      layout,
      torch: {
        name: `large_${tag}_${mode}_${shape.join('x')}`,
        module,
        num_features: C,
        eps: 1e-5,
        momentum: 0.1,
        affine: true,
        track_running_stats: true,
        init: {
          weight: Array.from({ length: C }, () => Math.fround(0.5 + next())),
          bias: Array.from({ length: C }, () => Math.fround(gaussian(next))),
          running_mean: Array.from({ length: C }, () => Math.fround(center + 0.3 * scale * gaussian(next))),
          running_var: Array.from({ length: C }, () => Math.fround(scale * scale * (0.5 + next()))),
        },
        steps: [
          {
            training: mode === 'train',
            shape,
            input: Array.from({ length: size }, () => Math.fround(center + scale * gaussian(next))),
            grad_output: Array.from({ length: size }, () => Math.fround(gaussian(next))),
          },
        ],
      },
    };
  });
}

// ---------------------------------------------------------------- suites

describe.each(BACKENDS)('backward on %s', (backend) => {
  let ctx: BatchNormContext;
  beforeAll(async () => {
    ctx = await contextFor(backend);
  });
  afterAll(() => ctx.destroy());

  it('matches the committed PyTorch autograd fixtures, in both layouts', async () => {
    const fx = loadFixture('backward');
    for (let i = 0; i < fx.cases.length; i++) {
      const c = fx.cases[i];
      const r = fx.results[i];
      if (!c || !r) throw new Error('fixture misaligned');
      const offset = c.name.includes('offset');
      for (const layout of ['channels_first', 'channels_last'] as const) {
        await runBackwardCase(ctx, backend, c, r, layout, offset);
        count(backend);
      }
    }
  });

  // 64 configurations (≥ 50 required), each in its random layout and in the other one.
  it.runIf(torchAvailable())('matches live PyTorch autograd on 64 random configurations', async () => {
    const configs = randomConfigs(64, 20240611);
    const results = runTorchReference(configs.map((c) => c.torch));
    for (let i = 0; i < configs.length; i++) {
      const cfg = configs[i];
      const r = results[i];
      if (!cfg || !r) throw new Error('misaligned');
      for (const layout of [cfg.layout, cfg.layout === 'channels_first' ? 'channels_last' : 'channels_first'] as const) {
        await runBackwardCase(ctx, backend, cfg.torch, r, layout, cfg.offset);
        count(backend);
      }
    }
  });

  it.runIf(torchAvailable())('matches live PyTorch autograd on larger shapes (many partials per channel)', async () => {
    const configs = largeConfigs(4242);
    const results = runTorchReference(configs.map((c) => c.torch));
    for (let i = 0; i < configs.length; i++) {
      const cfg = configs[i];
      const r = results[i];
      if (!cfg || !r) throw new Error('misaligned');
      await runBackwardCase(ctx, backend, cfg.torch, r, cfg.layout, cfg.offset);
      count(backend);
    }
  });

  it('functional eval: running statistics and the equivalent saveMean/saveInvstd give the same gradients', async () => {
    const shape = [3, 4, 5];
    const next = rng(11);
    const x = ctx.tensor(
      Float32Array.from({ length: 60 }, () => gaussian(next)),
      shape,
    );
    const dy = ctx.tensor(
      Float32Array.from({ length: 60 }, () => gaussian(next)),
      shape,
    );
    const weight = ctx.tensor([0.5, 1, 1.5, -2], [4]);
    const rmValues = Float32Array.from([0.1, -0.2, 0.3, 0]);
    const rvValues = Float32Array.from([0.5, 1, 2, 4]);
    const runningMean = ctx.tensor(rmValues, [4]);
    const runningVar = ctx.tensor(rvValues, [4]);
    const saveInvstd = ctx.tensor(
      rvValues.map((v) => 1 / Math.sqrt(v + 1e-5)),
      [4],
    );
    const a = batchNormBackward(ctx, { gradOutput: dy, input: x, weight, runningMean, runningVar, training: false });
    const b = batchNormBackward(ctx, { gradOutput: dy, input: x, weight, saveMean: runningMean, saveInvstd, training: false });
    for (const q of QUANTITIES) {
      const ta = a[q];
      const tb = b[q];
      if (!ta || !tb) throw new Error(`${q} missing`);
      const va = await ta.read();
      const vb = await tb.read();
      // invstd computed by the backend (float32 on WebGPU) vs rounded once to float32 here.
      va.forEach((v, i) => {
        expect(Math.abs(v - (vb[i] ?? NaN))).toBeLessThanOrEqual(4e-7 * (Math.abs(v) + 1));
      });
    }
    await ctx.sync();
    count(backend);
  });

  it('matches the CPU oracle on tensors at unaligned offsets inside larger buffers', async () => {
    if (backend === 'cpu' || !ctx.device) return;
    const device = ctx.device;
    const cpu = await contextFor('cpu');
    try {
      for (const [shape, layout] of [
        [[3, 4, 2, 4], 'channels_first'],
        [[3, 8, 5], 'channels_last'],
      ] as const) {
        const size = shape.reduce((a, b) => a * b, 1);
        const next = rng(7);
        const xs = Float32Array.from({ length: size }, () => 2 + gaussian(next));
        const dys = Float32Array.from({ length: size }, () => gaussian(next));
        // x at element 1 and dy at element 3 of shared buffers: the scalar kernels with base ≠ 0.
        const buf = device.createBuffer({ label: 'test.views', size: (size + 8) * 4 * 2, usage: 0x80 | 0x04 | 0x08 });
        device.queue.writeBuffer(buf, 4, xs);
        device.queue.writeBuffer(buf, (size + 8) * 4 + 12, dys);
        const x = ctx.tensorFromBuffer(buf, shape, { layout, byteOffset: 4 });
        const dy = ctx.tensorFromBuffer(buf, shape, { layout, byteOffset: (size + 8) * 4 + 12 });
        const results: Float32Array[][] = [];
        for (const c of [ctx, cpu]) {
          const C = shape[1];
          const mod: BatchNorm = shape.length === 3 ? new BatchNorm1d(c, C) : new BatchNorm2d(c, C);
          mod.loadStateDict({ ...(await mod.stateDict()), weight: Array.from({ length: C }, (_, i) => 0.5 + i) });
          const xi = c === ctx ? x : c.tensor(xs, shape, { layout });
          const dyi = c === ctx ? dy : c.tensor(dys, shape, { layout });
          const row: Float32Array[] = [];
          for (const training of [true, false]) {
            mod.train(training).forward(xi).destroy();
            const g = mod.backward(dyi);
            for (const t of [g.gradInput, g.gradWeight, g.gradBias]) {
              if (!t) throw new Error('missing gradient');
              row.push(await t.read());
              t.destroy();
            }
          }
          results.push(row);
          mod.destroy();
        }
        const [gpuRow, cpuRow] = results;
        if (!gpuRow || !cpuRow) throw new Error('missing results');
        gpuRow.forEach((a, j) => {
          const b = cpuRow[j] ?? new Float32Array();
          let maxRef = 0;
          for (const v of b) maxRef = Math.max(maxRef, Math.abs(v));
          for (let i = 0; i < b.length; i++) expect(Math.abs((a[i] ?? NaN) - (b[i] ?? 0))).toBeLessThanOrEqual(1e-5 * maxRef + 1e-6);
        });
        await ctx.sync();
        buf.destroy();
        count(backend);
      }
    } finally {
      cpu.destroy();
    }
  });
});

// ---------------------------------------------------------------- errors

// Real GPUs get the coalesced access pattern; SwiftShader (a fallback adapter) gets the contiguous
// one by default, so run the fixtures once more with the pattern forced to coalesced.
describe('backward on webgpu with the coalesced access pattern', () => {
  it('matches the committed PyTorch autograd fixtures, in both layouts', async () => {
    const ctx = await createContext({ backend: 'webgpu', accessPattern: 'coalesced' });
    try {
      const fx = loadFixture('backward');
      for (let i = 0; i < fx.cases.length; i++) {
        const c = fx.cases[i];
        const r = fx.results[i];
        if (!c || !r) throw new Error('fixture misaligned');
        for (const layout of ['channels_first', 'channels_last'] as const) {
          await runBackwardCase(ctx, 'webgpu', c, r, layout, c.name.includes('offset'));
          count('webgpu');
        }
      }
    } finally {
      ctx.destroy();
    }
  });
});

describe.each(BACKENDS)('backward errors on %s', (backend) => {
  let ctx: BatchNormContext;
  beforeAll(async () => {
    ctx = await contextFor(backend);
  });
  afterAll(() => ctx.destroy());

  const shape = [2, 3, 2, 2];
  const data = (k: number): Float32Array => Float32Array.from({ length: 24 }, (_, i) => Math.sin(i * k) + i * 0.05);

  async function snapshot(bn: BatchNorm): Promise<string> {
    const sd = await bn.stateDict();
    return JSON.stringify({ sd, tracked: bn.numBatchesTracked, live: ctx.stats.liveBuffers }, (_k, v: unknown) =>
      v instanceof Float32Array ? Array.from(v) : v,
    );
  }

  /**
   * Expects `fn` to throw `cls` synchronously, with no GPU buffer created and nothing submitted by
   * the call, and the module's state unchanged.
   */
  async function rejects(bn: BatchNorm, fn: () => unknown, cls: new (...args: never[]) => Error, message: RegExp): Promise<void> {
    const before = await snapshot(bn);
    const buffers = ctx.stats.buffersCreated;
    const submits = ctx.stats.submits;
    let thrown: unknown = null;
    try {
      fn();
    } catch (err) {
      thrown = err;
    }
    expect({ buffers: ctx.stats.buffersCreated - buffers, submits: ctx.stats.submits - submits }).toEqual({ buffers: 0, submits: 0 });
    expect(thrown).toBeInstanceOf(cls);
    expect((thrown as Error).message).toMatch(message);
    expect(await snapshot(bn)).toBe(before);
    await ctx.sync();
    count(backend);
  }

  it('backward before any forward throws BackwardStateError', async () => {
    const bn = new BatchNorm2d(ctx, 3);
    const dy = ctx.tensor(data(1), shape);
    await rejects(bn, () => bn.backward(dy), BackwardStateError, /BatchNorm2d\.backward: no forward to differentiate/);
    bn.destroy();
  });

  it('a gradOutput of another shape or layout throws ShapeError and keeps the forward usable', async () => {
    const bn = new BatchNorm2d(ctx, 3);
    const x = ctx.tensor(data(1), shape);
    bn.forward(x).destroy();
    const small = ctx.tensor(data(2).subarray(0, 12), [1, 3, 2, 2]);
    const last = ctx.tensor(data(2), shape, { layout: 'channels_last' });
    const rank3 = ctx.tensor(data(2), [2, 3, 4]);
    await rejects(bn, () => bn.backward(small), ShapeError, /gradOutput must match .*\[2, 3, 2, 2\].*got \[1, 3, 2, 2\]/);
    await rejects(bn, () => bn.backward(last), ShapeError, /layout 'channels_first'.*'channels_last'/);
    await rejects(bn, () => bn.backward(rank3), ShapeError, /gradOutput must match/);
    // The forward record survived the rejected calls.
    const g = bn.backward(ctx.tensor(data(2), shape));
    expect(g.gradInput?.shape).toEqual(shape);
    await ctx.sync();
    bn.destroy();
  });

  it('backward after loadStateDict throws BackwardStateError until the next forward', async () => {
    const bn = new BatchNorm2d(ctx, 3);
    const x = ctx.tensor(data(1), shape);
    const dy = ctx.tensor(data(2), shape);
    bn.forward(x).destroy();
    bn.loadStateDict(await bn.stateDict());
    await rejects(bn, () => bn.backward(dy), BackwardStateError, /no forward .*loadStateDict/);
    bn.forward(x).destroy();
    expect(bn.backward(dy).gradBias).not.toBeNull();
    await ctx.sync();
    bn.destroy();
  });

  it('a destroyed forward input, module or gradOutput throws DestroyedError', async () => {
    const bn = new BatchNorm2d(ctx, 3);
    const x = ctx.tensor(data(1), shape);
    const dy = ctx.tensor(data(2), shape);
    bn.forward(x).destroy();
    x.destroy();
    await rejects(bn, () => bn.backward(dy), DestroyedError, /input tensor 'tensor' was destroyed/);
    const x2 = ctx.tensor(data(1), shape);
    bn.forward(x2).destroy();
    const dead = ctx.tensor(data(2), shape);
    dead.destroy();
    await rejects(bn, () => bn.backward(dead), DestroyedError, /gradOutput/);
    bn.destroy();
    expect(() => bn.backward(dy)).toThrow(DestroyedError);
  });

  it('rejects bad masks, outputs and functional arguments with typed errors', async () => {
    const bn = new BatchNorm2d(ctx, 3, { affine: false });
    const x = ctx.tensor(data(1), shape);
    const dy = ctx.tensor(data(2), shape);
    bn.forward(x).destroy();
    await rejects(
      bn,
      () => bn.backward(dy, { outputMask: [true, true] as unknown as OutputMask }),
      ArgumentError,
      /outputMask must be an array of 3 booleans/,
    );
    // affine = false: weight and bias gradients do not exist, whatever the mask says.
    const g = bn.backward(dy);
    expect(g.gradWeight).toBeNull();
    expect(g.gradBias).toBeNull();
    expect(g.gradInput).not.toBeNull();
    if (backend === 'cpu') {
      await rejects(bn, () => bn.encodeBackward({} as GPUCommandEncoder, dy, {}), ArgumentError, /needs the 'webgpu' backend/);
    } else if (ctx.device) {
      const enc = ctx.device.createCommandEncoder();
      const gw = ctx.tensor([0, 0, 0], [3]);
      const wrong = ctx.tensor(data(3), [2, 3, 4]);
      await rejects(bn, () => bn.encodeBackward(enc, dy, { gradWeight: gw }), ArgumentError, /affine = false/);
      await rejects(
        bn,
        () => bn.encodeBackward(enc, dy, { gradInput: dy }),
        ArgumentError,
        /gradInput \(.*\) shares memory with gradOutput/,
      );
      await rejects(bn, () => bn.encodeBackward(enc, dy, { gradInput: wrong }), ShapeError, /gradInput must match/);
      enc.finish();
    }
    const saveMean = ctx.tensor([0, 0, 0], [3]);
    const saveInvstd = ctx.tensor([1, 1, 1], [3]);
    expect(() => batchNormBackward(ctx, { gradOutput: dy, input: x, saveMean })).toThrow(/saveMean and saveInvstd are required/);
    expect(() => batchNormBackward(ctx, { gradOutput: dy, input: x, training: false })).toThrow(
      /training is false: give runningMean and runningVar/,
    );
    expect(() => batchNormBackward(ctx, { gradOutput: dy, input: x, training: false, runningMean: saveMean })).toThrow(
      /must be given together/,
    );
    expect(() => batchNormBackward(ctx, { gradOutput: dy, input: x, saveMean, saveInvstd: ctx.tensor([1, 1], [2]) })).toThrow(ShapeError);
    expect(() => batchNormBackward(ctx, { gradOutput: ctx.tensor(data(1), [2, 3, 4]), input: x, saveMean, saveInvstd })).toThrow(
      ShapeError,
    );
    expect(() =>
      batchNormBackward(ctx, { gradOutput: dy, input: x, runningMean: saveMean, runningVar: saveInvstd, training: false, eps: 0 }),
    ).toThrow(ArgumentError);
    count(backend);
    await ctx.sync();
    bn.destroy();
  });
});

// ---------------------------------------------------------------- masks skip work, bindings, steady state

describe('backward on webgpu: dispatches, bindings and allocation', () => {
  let ctx: BatchNormContext;
  beforeAll(async () => {
    ctx = await contextFor('webgpu');
  });
  afterAll(() => ctx.destroy());

  /** Kernel keys (shader.entry|overrides) dispatched while `fn` runs, and the bound names per key. */
  function recordDispatches(fn: () => void): { keys: string[]; bound: Map<string, string[]> } {
    const keys: string[] = [];
    const bound = new Map<string, string[]>();
    const real = BindGroupCache.prototype.get;
    const spy = vi.spyOn(BindGroupCache.prototype, 'get').mockImplementation(function (this: BindGroupCache, kernel, resources) {
      keys.push(kernel.key);
      bound.set(kernel.key.split('|')[0] ?? '', Object.keys(resources).sort());
      return real.call(this, kernel, resources);
    });
    try {
      fn();
    } finally {
      spy.mockRestore();
    }
    return { keys, bound };
  }

  it('outputMask skips the work of gradients nobody asked for', async () => {
    const shape = [4, 3, 2, 2];
    const x = ctx.tensor(
      Float32Array.from({ length: 48 }, (_, i) => Math.sin(i)),
      shape,
    );
    const dy = ctx.tensor(
      Float32Array.from({ length: 48 }, (_, i) => Math.cos(i)),
      shape,
    );
    const bn = new BatchNorm2d(ctx, 3);
    const run = (training: boolean, mask: OutputMask): { keys: string[]; submits: number } => {
      bn.train(training).forward(x).destroy();
      const submits = ctx.stats.submits;
      let g: BackwardResult | null = null;
      const { keys } = recordDispatches(() => {
        g = bn.backward(dy, { outputMask: mask });
      });
      const res = g as BackwardResult | null;
      for (const t of [res?.gradInput, res?.gradWeight, res?.gradBias]) t?.destroy();
      return { keys: keys.map((k) => k.split('|')[0] ?? ''), submits: ctx.stats.submits - submits };
    };
    const reduce = 'backward-reduce.reduce_cf4';
    const finalize = 'backward-reduce.reduce_finalize';
    const elementwise = 'backward-elementwise.elementwise_cf4';
    expect(run(true, [true, true, true])).toEqual({ keys: [reduce, finalize, elementwise], submits: 1 });
    expect(run(true, [false, true, true])).toEqual({ keys: [reduce, finalize], submits: 1 });
    expect(run(true, [true, false, false])).toEqual({ keys: [reduce, finalize, elementwise], submits: 1 });
    expect(run(false, [true, false, false])).toEqual({ keys: [elementwise], submits: 1 });
    expect(run(false, [false, false, true])).toEqual({ keys: [reduce, finalize], submits: 1 });
    expect(run(true, [false, false, false])).toEqual({ keys: [], submits: 0 });
    await ctx.sync();
    bn.destroy();
  });

  it('binds exactly the resources each backward entry point declares, for every kernel variant', async () => {
    const all = new Map<string, string[]>();
    const variants: Array<[number[], Layout]> = [
      [[2, 3, 2, 2], 'channels_first'], // cf4
      [[2, 3, 3, 3], 'channels_first'], // cf1
      [[2, 4, 3, 3], 'channels_last'], // cl4
      [[2, 3, 3, 3], 'channels_last'], // cl1
    ];
    // float16 takes the scalar reductions with HALF_FORMAT (or the word walks reduce_*2h), and word walks (or anyh) for the elementwise pass.
    for (const [shape, layout, dtype] of variants.flatMap(([s, l]) => (['float32', 'float16'] as const).map((d) => [s, l, d] as const))) {
      const size = shape.reduce((a, b) => a * b, 1);
      const x = ctx.tensor(
        Float32Array.from({ length: size }, (_, i) => Math.sin(i)),
        shape,
        { layout, dtype },
      );
      const dy = ctx.tensor(
        Float32Array.from({ length: size }, (_, i) => Math.cos(i)),
        shape,
        { layout, dtype },
      );
      const c = shape[1] ?? 0;
      const stats = ctx.tensor(new Float32Array(c).fill(1), [c]);
      const bn = new BatchNorm2d(ctx, c);
      const { bound } = recordDispatches(() => {
        for (const training of [true, false]) {
          bn.train(training).forward(x).destroy();
          const g = bn.backward(dy);
          for (const t of [g.gradInput, g.gradWeight, g.gradBias]) t?.destroy();
        }
        const f = batchNormBackward(ctx, { gradOutput: dy, input: x, saveMean: stats, saveInvstd: stats });
        f.gradInput?.destroy();
      });
      for (const [k, v] of bound) all.set(k, v);
      bn.destroy();
    }
    await ctx.sync();
    for (const id of ['backward-prepare', 'backward-reduce', 'backward-elementwise'] as const) {
      for (const [name, entry] of reflectShader(shaderSpecs[id])) {
        const names = all.get(`${id}.${name}`);
        expect(names, `${id}.${name} was never dispatched`).toBeDefined();
        expect(names).toEqual(entry.bindings.map((b) => b.name).sort());
      }
    }
  });

  it('a steady-state forward + backward allocates no GPU buffers and submits once each', async () => {
    const shape = [8, 4, 3, 3];
    const size = shape.reduce((a, b) => a * b, 1);
    const x = ctx.tensor(
      Float32Array.from({ length: size }, (_, i) => Math.sin(i)),
      shape,
      { layout: 'channels_last' },
    );
    const dy = ctx.tensor(
      Float32Array.from({ length: size }, (_, i) => Math.cos(i)),
      shape,
      { layout: 'channels_last' },
    );
    const bn = new BatchNorm2d(ctx, 4);
    const step = (): void => {
      bn.forward(x).destroy();
      const g = bn.backward(dy);
      for (const t of [g.gradInput, g.gradWeight, g.gradBias]) t?.destroy();
    };
    for (let i = 0; i < 3; i++) step();
    await ctx.sync();
    const buffers = ctx.stats.buffersCreated;
    const submits = ctx.stats.submits;
    for (let i = 0; i < 20; i++) step();
    await ctx.sync();
    expect(ctx.stats.buffersCreated - buffers).toBe(0);
    expect(ctx.stats.submits - submits).toBe(40);
    bn.destroy();
  });
});
