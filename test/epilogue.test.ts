/**
 * Fused epilogues, y = act(bn(x) + residual): outputs, running statistics and every gradient
 * (input, weight, bias, residual) against PyTorch's float64 autograd of
 * `act(F.batch_norm(x, ...) + z)` (test/torch/epilogue_reference.py, live), for ReLU, ReLU6,
 * clamp (hardtanh), LeakyReLU, SiLU, GELU (erf and tanh forms), hardswish, sigmoid, tanh, ELU
 * (default and other alpha) and PReLU (per-channel and shared slope, with its weight gradient)
 * with and without a residual, training and eval, on both
 * backends and both layouts, through the module, the functional API and caller encoders. Then the
 * typed errors (nothing changes), the binding contract and steady-state allocation.
 */
import { shaderSpecs } from '../src/gpu/shader-sources.js';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import {
  ArgumentError,
  BackwardStateError,
  BatchNorm1d,
  BatchNorm2d,
  BatchNorm3d,
  ContextMismatchError,
  DestroyedError,
  ShapeError,
  batchNorm,
  batchNormBackward,
  createContext,
  type Activation,
  type BatchNorm,
  type BatchNormContext,
  type Epilogue,
  type Layout,
  type Tensor,
} from '../src/index.js';
import { ACTIVATION_CODE } from '../src/batch-norm/epilogue.js';
import * as contracts from '../src/gpu/contracts.js';
import { BindGroupCache } from '../src/gpu/object-caches.js';
import { reflectShader } from '../src/gpu/reflect.js';
import { BACKENDS, caseCounter, checkClose, contextFor, fromLayout, gaussian, rng, toLayout, type Backend } from './helpers/backends.js';
import { REPO_ROOT, TORCH_PYTHON, torchAvailable } from './helpers/torch-reference.js';

/**
 * Tolerances, per quantity, against float64 PyTorch on the same float32 inputs.
 *
 * output: 1e-5 + 1e-5·|ref|, the forward suites' bound (every activation here has |act'| ≤ 1.5
 *   (hardswish at t = 3; GELU ≤ 1.13, PReLU slopes |w| ≤ 0.5), so it barely amplifies the
 *   normalize error; the WGSL transcendentals (exp, the float32 erfc of GELU, relative error
 *   ≤ 1.2e-7) add a few 1e-7 at most).
 * running_mean: 1e-6 + 2e-6·|ref|; running_var: 1e-6 + 1e-5·|ref| (the forward suites' bounds).
 * Gradients: as test/backward.test.ts, with dy replaced by the gradient at the pre-activation,
 *   g = act'(t)·dy, whose per-element magnitude is bounded by G = |dy|·(1 + |t|) (|act'(t)| ≤ 1 + |t|
 *   for every activation here): the derivative is evaluated at a t that carries the forward's own
 *   error (≤ 1e-5·(1 + |t|)), and |act''| ≤ 1 (GELU 0.8, tanh 0.77, ELU α·e^t ≤ 0.7).
 *   With ŷ = (x − mean)·invstd, gs = invstd·|weight|, A = mean G, B = mean G·|ŷ| per channel:
 *   grad_residual ρ·G;  grad_bias ρ·ΣG;  grad_weight ρ·(ΣG + ΣG·|ŷ|);
 *   grad_input ρ·gs·(G + (1 + |ŷ|)·(A + B))  (running statistics: ρ·gs·G).
 *   grad_prelu_weight ρ·ΣG over the slope's channel (every channel for a [1] slope): it is
 *   Σ dy·t over t ≤ 0, and |dy·t| ≤ G.
 *   ρ = 1e-5 on WebGPU (blocked float32 sums, see backward.test.ts), 1e-6 on the CPU (float64).
 * Pre-activations are kept ≥ 1e-3 away from every kink (0, clamp bounds, hardswish's ±3 where its
 * derivative jumps, 0 for PReLU and for ELU with α ≠ 1) by nudging the residual
 * or the input before the case is run, so a float32 rounding can never flip a mask: a flipped
 * mask is a real difference of |dy|, not a rounding error.
 */
const OUTPUT_ABS = 1e-5;
const OUTPUT_REL = 1e-5;
const RHO: Record<Backend, number> = { webgpu: 1e-5, cpu: 1e-6 };
const KINK_GAP = 1e-3;

type ActivationName =
  | 'none'
  | 'relu'
  | 'relu6'
  | 'clamp'
  | 'leakyRelu'
  | 'silu'
  | 'gelu'
  | 'geluTanh'
  | 'hardswish'
  | 'sigmoid'
  | 'tanh'
  | 'elu'
  | 'eluAlpha'
  | 'prelu'
  | 'preluShared';
type Path = 'module' | 'functional' | 'encoder';

interface EpilogueCase {
  readonly name: string;
  readonly shape: number[];
  readonly training: boolean;
  readonly eps: number;
  readonly momentum: number;
  readonly activation: ActivationName;
  readonly clampMin: number;
  readonly clampMax: number;
  readonly slope: number;
  /** eluAlpha's alpha ('elu' is the default 1.0). */
  readonly alpha: number;
  /** prelu: [C] slopes of both signs; preluShared: [1]; null otherwise. */
  readonly preluWeight: number[] | null;
  readonly input: number[];
  readonly residual: number[] | null;
  readonly gradOutput: number[];
  readonly weight: number[];
  readonly bias: number[];
  readonly runningMean: number[];
  readonly runningVar: number[];
}

interface Reference {
  output: number[];
  pre_activation: number[];
  grad_t: number[];
  grad_input: number[];
  grad_weight: number[];
  grad_bias: number[];
  grad_residual: number[] | null;
  running_mean: number[];
  running_var: number[];
  grad_prelu_weight: number[] | null;
}

/** The case's activation spec; `tensor` makes the PReLU weight (a tensor of the run's context). */
function activationOf(c: EpilogueCase, tensor: (values: readonly number[]) => Tensor): Activation | null {
  switch (c.activation) {
    case 'none':
      return null;
    case 'clamp':
      return { kind: 'clamp', min: c.clampMin, max: c.clampMax };
    case 'leakyRelu':
      return { kind: 'leakyRelu', slope: c.slope };
    case 'geluTanh':
      return { kind: 'gelu', approximate: 'tanh' };
    case 'eluAlpha':
      return { kind: 'elu', alpha: c.alpha };
    case 'prelu':
    case 'preluShared':
      return { kind: 'prelu', weight: tensor(c.preluWeight ?? []) };
    default:
      return c.activation;
  }
}

/** The reference script's activation kind (it knows each torch function once). */
function torchKind(a: ActivationName): string {
  return a === 'eluAlpha' ? 'elu' : a === 'preluShared' ? 'prelu' : a;
}

function kinks(c: EpilogueCase): number[] {
  switch (c.activation) {
    case 'relu':
    case 'leakyRelu':
    case 'eluAlpha':
    case 'prelu':
    case 'preluShared':
      return [0];
    case 'hardswish':
      return [-3, 3];
    case 'relu6':
      return [0, 6];
    case 'clamp':
      return [c.clampMin, c.clampMax];
    default:
      return [];
  }
}

function dims(shape: readonly number[]): { n: number; c: number; s: number } {
  const s = shape.slice(2).reduce((a, b) => a * b, 1);
  return { n: shape[0] ?? 0, c: shape[1] ?? 0, s };
}

/** Float64 mean and invstd the forward normalizes with (batch or running). */
function stats64(c: EpilogueCase, x: readonly number[]): { mean: Float64Array; invstd: Float64Array } {
  const { n, c: C, s } = dims(c.shape);
  const mean = new Float64Array(C);
  const invstd = new Float64Array(C);
  for (let ch = 0; ch < C; ch++) {
    if (!c.training) {
      mean[ch] = c.runningMean[ch] ?? 0;
      invstd[ch] = 1 / Math.sqrt((c.runningVar[ch] ?? 0) + c.eps);
      continue;
    }
    let sum = 0;
    for (let i = 0; i < n; i++) for (let k = 0; k < s; k++) sum += x[(i * C + ch) * s + k] as number;
    const m = sum / (n * s);
    let sq = 0;
    for (let i = 0; i < n; i++) for (let k = 0; k < s; k++) sq += ((x[(i * C + ch) * s + k] as number) - m) ** 2;
    mean[ch] = m;
    invstd[ch] = 1 / Math.sqrt(sq / (n * s) + c.eps);
  }
  return { mean, invstd };
}

/** Moves every pre-activation at least KINK_GAP away from the activation's kinks (see header). */
function avoidKinks(c: EpilogueCase): void {
  const ks = kinks(c);
  if (ks.length === 0) return;
  const { c: C, s } = dims(c.shape);
  const x = c.input;
  const z = c.residual;
  for (let round = 0; round < 50; round++) {
    const { mean, invstd } = stats64(c, x);
    let moved = false;
    for (let i = 0; i < x.length; i++) {
      const ch = Math.floor(i / s) % C;
      const scale = (invstd[ch] as number) * (c.weight[ch] as number);
      const t = ((x[i] as number) - (mean[ch] as number)) * scale + (c.bias[ch] as number) + (z ? (z[i] as number) : 0);
      if (!ks.some((k) => Math.abs(t - k) < KINK_GAP)) continue;
      moved = true;
      if (z) z[i] = Math.fround((z[i] as number) + 4 * KINK_GAP);
      else x[i] = Math.fround((x[i] as number) + (4 * KINK_GAP) / scale);
    }
    if (!moved) return;
  }
  throw new Error(`${c.name}: could not move pre-activations away from the kinks`);
}

const ACTIVATIONS: ReadonlyArray<[ActivationName, boolean]> = [
  ['none', true],
  ['relu', false],
  ['relu', true],
  ['relu6', false],
  ['clamp', true],
  ['leakyRelu', false],
  ['leakyRelu', true],
  ['silu', false],
  ['silu', true],
  ['gelu', false],
  ['gelu', true],
  ['geluTanh', true],
  ['hardswish', false],
  ['hardswish', true],
  ['sigmoid', true],
  ['tanh', false],
  ['elu', true],
  ['eluAlpha', false],
  ['prelu', false],
  ['prelu', true],
  ['preluShared', true],
];
// vec4 and scalar kernels in each layout: [4,16,3,5] is CL vec4 (16 channels: the 4-column
// groups of the contiguous pattern) / CF scalar, [3,6,4,4] CF vec4 / CL scalar; rank 2 (rows along
// C, 8 vec4 columns) and rank 5 besides.
const SHAPES: readonly number[][] = [
  [4, 16, 3, 5],
  [3, 6, 4, 4],
  [16, 32],
  [2, 3, 2, 3, 3],
];
const SEED = 20261130;

function makeCase(index: number, activation: ActivationName, residual: boolean, training: boolean, shape: number[]): EpilogueCase {
  const next = rng(SEED + index * 104729);
  const size = shape.reduce((a, b) => a * b, 1);
  const C = shape[1] ?? 1;
  const f32 = (v: number): number => Math.fround(v);
  // Larger pre-activations where the interesting regions lie beyond ±3 (relu6's 6, hardswish's
  // ±3, the saturation of sigmoid and tanh).
  const gain = activation === 'relu6' ? 4 : activation === 'hardswish' || activation === 'sigmoid' || activation === 'tanh' ? 3 : 1;
  const c: EpilogueCase = {
    name: `${activation}${residual ? '+residual' : ''} ${training ? 'train' : 'eval'} [${shape.join(',')}]`,
    shape,
    training,
    eps: 1e-5,
    momentum: 0.1,
    activation,
    clampMin: -0.5,
    clampMax: 0.8,
    slope: 0.1,
    alpha: 0.7,
    // Slopes of both signs: a negative one makes y > 0 for t < 0, so only t decides the branch.
    preluWeight:
      activation === 'prelu' ? Array.from({ length: C }, () => f32(next() - 0.5)) : activation === 'preluShared' ? [f32(-0.3)] : null,
    input: Array.from({ length: size }, () => f32(0.3 + 1.5 * gaussian(next))),
    residual: residual ? Array.from({ length: size }, () => f32(gaussian(next))) : null,
    gradOutput: Array.from({ length: size }, () => f32(gaussian(next))),
    weight: Array.from({ length: C }, () => f32(gain * (0.5 + next()))),
    bias: Array.from({ length: C }, () => f32(gain * (next() - 0.5))),
    runningMean: Array.from({ length: C }, () => f32(0.3 + 0.5 * (next() - 0.5))),
    runningVar: Array.from({ length: C }, () => f32(1.5 + next())),
  };
  avoidKinks(c);
  return c;
}

const CASES: EpilogueCase[] = [];
for (const [a, res] of ACTIVATIONS) {
  for (const training of [true, false]) {
    for (const shape of SHAPES) CASES.push(makeCase(CASES.length, a, res, training, shape));
  }
}

function runReference(cases: readonly EpilogueCase[]): Reference[] {
  const dir = mkdtempSync(join(tmpdir(), 'bn-epilogue-'));
  try {
    const inPath = join(dir, 'in.json');
    const outPath = join(dir, 'out.json');
    const payload = cases.map((c) => ({
      shape: c.shape,
      training: c.training,
      eps: c.eps,
      momentum: c.momentum,
      input: c.input,
      residual: c.residual,
      grad_output: c.gradOutput,
      weight: c.weight,
      bias: c.bias,
      running_mean: c.runningMean,
      running_var: c.runningVar,
      activation: {
        kind: torchKind(c.activation),
        min: c.clampMin,
        max: c.clampMax,
        slope: c.activation === 'eluAlpha' ? c.alpha : c.activation === 'elu' ? 1.0 : c.slope,
        prelu_weight: c.preluWeight,
      },
    }));
    writeFileSync(inPath, JSON.stringify({ cases: payload }), 'utf8');
    const r = spawnSync(TORCH_PYTHON, [join(REPO_ROOT, 'test', 'torch', 'epilogue_reference.py'), inPath, outPath], {
      encoding: 'utf8',
      timeout: 600_000,
    });
    if (r.error !== undefined || r.status !== 0) throw new Error(`epilogue_reference.py failed: ${r.error?.message ?? r.stderr}`);
    const out = JSON.parse(readFileSync(outPath, 'utf8')) as { results: Reference[] };
    return out.results;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

interface Got {
  output: Float64Array;
  runningMean: Float32Array;
  runningVar: Float32Array;
  gradInput: Float64Array;
  gradWeight: Float32Array;
  gradBias: Float32Array;
  gradResidual: Float64Array | null;
  gradPreluWeight: Float32Array | null;
}

function moduleFor(ctx: BatchNormContext, c: EpilogueCase): BatchNorm {
  const C = c.shape[1] ?? 1;
  const opts = { eps: c.eps, momentum: c.momentum };
  const bn =
    c.shape.length === 5
      ? new BatchNorm3d(ctx, C, opts)
      : c.shape.length === 4
        ? new BatchNorm2d(ctx, C, opts)
        : new BatchNorm1d(ctx, C, opts);
  bn.loadStateDict({
    weight: Float32Array.from(c.weight),
    bias: Float32Array.from(c.bias),
    running_mean: Float32Array.from(c.runningMean),
    running_var: Float32Array.from(c.runningVar),
    num_batches_tracked: 0,
  });
  return bn.train(c.training);
}

/** Runs one case through one API path; every tensor it makes is destroyed before returning. */
async function runPath(ctx: BatchNormContext, c: EpilogueCase, layout: Layout, path: Path): Promise<Got> {
  const shape = c.shape;
  const owned: Tensor[] = [];
  const t = (values: readonly number[], s: readonly number[], l: Layout = layout): Tensor => {
    const tensor = ctx.tensor(s.length >= 3 ? toLayout(values, s, l) : Float32Array.from(values), s, { layout: l });
    owned.push(tensor);
    return tensor;
  };
  const logical = async (tensor: Tensor): Promise<Float64Array> => fromLayout(await tensor.read(), shape, layout);
  try {
    const x = t(c.input, shape);
    const dy = t(c.gradOutput, shape);
    const z = c.residual ? t(c.residual, shape) : null;
    const activation = activationOf(c, (values) => t(values, [values.length], 'channels_first'));
    const epilogue: Epilogue = { activation, residual: z };
    const C = shape[1] ?? 1;
    if (path === 'functional') {
      const weight = t(c.weight, [C], 'channels_first');
      const bias = t(c.bias, [C], 'channels_first');
      const runningMean = t(c.runningMean, [C], 'channels_first');
      const runningVar = t(c.runningVar, [C], 'channels_first');
      const y = batchNorm(ctx, x, {
        runningMean,
        runningVar,
        weight,
        bias,
        training: c.training,
        momentum: c.momentum,
        eps: c.eps,
        epilogue,
      });
      owned.push(y);
      // The functional backward takes the statistics the forward normalized with, as ATen does:
      // float32 batch statistics (training) or the running ones (eval).
      const { mean, invstd } = stats64(c, c.input);
      const saved = c.training
        ? {
            saveMean: t(Array.from(mean, Math.fround), [C], 'channels_first'),
            saveInvstd: t(Array.from(invstd, Math.fround), [C], 'channels_first'),
          }
        : { runningMean: t(c.runningMean, [C], 'channels_first'), runningVar: t(c.runningVar, [C], 'channels_first'), eps: c.eps };
      const r = batchNormBackward(ctx, { gradOutput: dy, input: x, weight, bias, training: c.training, ...saved, epilogue, output: y });
      for (const g of [r.gradInput, r.gradWeight, r.gradBias, r.gradResidual, r.gradPreluWeight]) if (g) owned.push(g);
      if (!r.gradInput || !r.gradWeight || !r.gradBias) throw new Error('functional backward returned null gradients');
      return {
        output: await logical(y),
        runningMean: await runningMean.readFloat32(),
        runningVar: await runningVar.readFloat32(),
        gradInput: await logical(r.gradInput),
        gradWeight: await r.gradWeight.read(),
        gradBias: await r.gradBias.read(),
        gradResidual: r.gradResidual ? await logical(r.gradResidual) : null,
        gradPreluWeight: r.gradPreluWeight ? await r.gradPreluWeight.read() : null,
      };
    }
    const bn = moduleFor(ctx, c);
    try {
      if (path === 'encoder') {
        const device = ctx.device;
        if (!device) throw new Error('encoder path needs WebGPU');
        const y = t(new Array<number>(c.input.length).fill(0), shape);
        const gradInput = t(new Array<number>(c.input.length).fill(0), shape);
        const gradWeight = t(new Array<number>(C).fill(0), [C], 'channels_first');
        const gradBias = t(new Array<number>(C).fill(0), [C], 'channels_first');
        const gradResidual = z ? t(new Array<number>(c.input.length).fill(0), shape) : null;
        const gradPreluWeight = c.preluWeight
          ? t(new Array<number>(c.preluWeight.length).fill(0), [c.preluWeight.length], 'channels_first')
          : null;
        // Forward and backward recorded into one caller encoder, one submit.
        const encoder = device.createCommandEncoder();
        bn.encodeForward(encoder, x, y, { epilogue });
        bn.encodeBackward(encoder, dy, { gradInput, gradWeight, gradBias, gradResidual, gradPreluWeight });
        device.queue.submit([encoder.finish()]);
        await ctx.sync();
        return {
          output: await logical(y),
          runningMean: await (bn.runningMean as Tensor).readFloat32(),
          runningVar: await (bn.runningVar as Tensor).readFloat32(),
          gradInput: await logical(gradInput),
          gradWeight: await gradWeight.readFloat32(),
          gradBias: await gradBias.readFloat32(),
          gradResidual: gradResidual ? await logical(gradResidual) : null,
          gradPreluWeight: gradPreluWeight ? await gradPreluWeight.readFloat32() : null,
        };
      }
      const y = bn.forward(x, { epilogue });
      owned.push(y);
      const r = bn.backward(dy);
      for (const g of [r.gradInput, r.gradWeight, r.gradBias, r.gradResidual, r.gradPreluWeight]) if (g) owned.push(g);
      if (!r.gradInput || !r.gradWeight || !r.gradBias) throw new Error('module backward returned null gradients');
      return {
        output: await logical(y),
        runningMean: await (bn.runningMean as Tensor).readFloat32(),
        runningVar: await (bn.runningVar as Tensor).readFloat32(),
        gradInput: await logical(r.gradInput),
        gradWeight: await r.gradWeight.read(),
        gradBias: await r.gradBias.read(),
        gradResidual: r.gradResidual ? await logical(r.gradResidual) : null,
        gradPreluWeight: r.gradPreluWeight ? await r.gradPreluWeight.read() : null,
      };
    } finally {
      bn.destroy();
    }
  } finally {
    for (const o of owned) o.destroy();
  }
}

type Quantity = 'output' | 'runningStats' | 'gradInput' | 'gradWeight' | 'gradBias' | 'gradResidual' | 'gradPreluWeight';
const worst: Record<Backend, Record<Quantity, number>> = {
  webgpu: { output: 0, runningStats: 0, gradInput: 0, gradWeight: 0, gradBias: 0, gradResidual: 0, gradPreluWeight: 0 },
  cpu: { output: 0, runningStats: 0, gradInput: 0, gradWeight: 0, gradBias: 0, gradResidual: 0, gradPreluWeight: 0 },
};
/** Worst |err| per activation (both backends), for the report. */
const worstByActivation = new Map<string, number>();
afterAll(() => {
  if (process.env['EPILOGUE_REPORT']) {
    for (const [k, v] of [...worstByActivation].sort()) console.log(`[epilogue max |err|] ${k}: ${v.toExponential(2)}`);
  }
  for (const b of BACKENDS)
    console.log(
      `[epilogue max |err| vs PyTorch float64] ${b}: ${JSON.stringify(worst[b], (_k, v: unknown) => (typeof v === 'number' ? Number(v.toExponential(2)) : v))}`,
    );
});

/** Checks a path's results against the reference with the tolerances of the header. */
function compare(backend: Backend, c: EpilogueCase, ref: Reference, got: Got, label: string): void {
  const { c: C, s } = dims(c.shape);
  const rho = RHO[backend];
  const { mean, invstd } = stats64(c, c.input);
  const size = c.input.length;
  const G = new Float64Array(size);
  const yhat = new Float64Array(size);
  const sumG = new Float64Array(C);
  const sumGY = new Float64Array(C);
  for (let i = 0; i < size; i++) {
    const ch = Math.floor(i / s) % C;
    G[i] = Math.abs(c.gradOutput[i] as number) * (1 + Math.abs(ref.pre_activation[i] as number));
    yhat[i] = Math.abs(((c.input[i] as number) - (mean[ch] as number)) * (invstd[ch] as number));
    sumG[ch] = (sumG[ch] as number) + (G[i] as number);
    sumGY[ch] = (sumGY[ch] as number) + (G[i] as number) * (yhat[i] as number);
  }
  const m = size / C;
  const record = (q: Quantity, err: number): void => {
    worst[backend][q] = Math.max(worst[backend][q], err);
    const key = `${backend} ${c.activation} ${q}`;
    worstByActivation.set(key, Math.max(worstByActivation.get(key) ?? 0, err));
  };
  const check = (q: Quantity, what: string, actual: ArrayLike<number>, expected: ArrayLike<number>, tol: (i: number) => number): void => {
    const r = checkClose(`${label} ${what}`, actual, expected, tol);
    if (r.failure) throw new Error(r.failure);
    record(q, r.maxErr);
  };
  check('output', 'output', got.output, ref.output, (i) => OUTPUT_ABS + OUTPUT_REL * Math.abs(ref.output[i] as number));
  check('runningStats', 'running_mean', got.runningMean, ref.running_mean, (i) => 1e-6 + 2e-6 * Math.abs(ref.running_mean[i] as number));
  check('runningStats', 'running_var', got.runningVar, ref.running_var, (i) => 1e-6 + 1e-5 * Math.abs(ref.running_var[i] as number));
  check('gradBias', 'grad_bias', got.gradBias, ref.grad_bias, (ch) => rho * (sumG[ch] as number));
  check('gradWeight', 'grad_weight', got.gradWeight, ref.grad_weight, (ch) => rho * ((sumG[ch] as number) + (sumGY[ch] as number)));
  check('gradInput', 'grad_input', got.gradInput, ref.grad_input, (i) => {
    const ch = Math.floor(i / s) % C;
    const gs = (invstd[ch] as number) * Math.abs(c.weight[ch] as number);
    if (!c.training) return rho * gs * (G[i] as number);
    return rho * gs * ((G[i] as number) + (1 + (yhat[i] as number)) * ((sumG[ch] as number) / m + (sumGY[ch] as number) / m));
  });
  if (ref.grad_residual) {
    if (!got.gradResidual) throw new Error(`${label}: no gradResidual`);
    check('gradResidual', 'grad_residual', got.gradResidual, ref.grad_residual, (i) => rho * (G[i] as number));
  } else if (got.gradResidual) {
    throw new Error(`${label}: gradResidual without a residual`);
  }
  if (ref.grad_prelu_weight) {
    if (!got.gradPreluWeight) throw new Error(`${label}: no gradPreluWeight`);
    const shared = ref.grad_prelu_weight.length === 1;
    check('gradPreluWeight', 'grad_prelu_weight', got.gradPreluWeight, ref.grad_prelu_weight, (k) =>
      shared ? rho * sumG.reduce((a, b) => a + b, 0) : rho * (sumG[k] as number),
    );
  } else if (got.gradPreluWeight) {
    throw new Error(`${label}: gradPreluWeight without PReLU`);
  }
}

const count = caseCounter('epilogue (PyTorch differential)');
const available = torchAvailable();

describe.runIf(available).each(BACKENDS)('fused epilogues vs PyTorch float64 autograd on %s', (backend) => {
  let ctx: BatchNormContext;
  let refs: Reference[] = [];
  beforeAll(async () => {
    ctx = await contextFor(backend);
    refs = runReference(CASES);
  });
  afterAll(() => ctx.destroy());

  it(`matches on ${CASES.length} configurations × layouts, through module, functional and encoder APIs`, async () => {
    // Every fourth case through the functional API, every fourth (WebGPU) through caller encoders.
    const paths: Path[] =
      backend === 'webgpu' ? ['module', 'module', 'functional', 'encoder'] : ['module', 'module', 'functional', 'module'];
    let ran = 0;
    for (const [i, c] of CASES.entries()) {
      const ref = refs[i];
      if (!ref) throw new Error(`no reference for ${c.name}`);
      const layouts: Layout[] = c.shape.length >= 3 ? ['channels_first', 'channels_last'] : ['channels_first'];
      // Rotated across the shapes, so every path meets every kernel variant.
      const path = paths[(i + Math.floor(i / SHAPES.length)) % paths.length] as Path;
      for (const layout of layouts) {
        const got = await runPath(ctx, c, layout, path);
        compare(backend, c, ref, got, `[${backend} ${layout} ${path}] ${c.name}`);
        count(backend);
        ran++;
      }
    }
    expect(ran).toBe(CASES.length * 1.75);
  });
});

it('has PyTorch available in CI', () => {
  if (process.env['CI']) expect(available, 'CI must install python3-torch for the epilogue differential').toBe(true);
});

describe('activation codes', () => {
  it('ACTIVATION_CODE is the contract of src/gpu/contracts.ts (checked against the WGSL prelude by wgsl-static)', () => {
    expect(ACTIVATION_CODE).toEqual({
      none: contracts.ACTIVATION_NONE,
      relu: contracts.ACTIVATION_RELU,
      clamp: contracts.ACTIVATION_CLAMP,
      leakyRelu: contracts.ACTIVATION_LEAKY_RELU,
      silu: contracts.ACTIVATION_SILU,
      gelu: contracts.ACTIVATION_GELU,
      geluTanh: contracts.ACTIVATION_GELU_TANH,
      hardswish: contracts.ACTIVATION_HARDSWISH,
      sigmoid: contracts.ACTIVATION_SIGMOID,
      tanh: contracts.ACTIVATION_TANH,
      elu: contracts.ACTIVATION_ELU,
      prelu: contracts.ACTIVATION_PRELU,
    });
  });
});

describe.each(BACKENDS)('epilogue errors and lifetimes on %s', (backend) => {
  let ctx: BatchNormContext;
  beforeAll(async () => {
    ctx = await contextFor(backend);
  });
  afterAll(() => ctx.destroy());

  const shape = [2, 4, 2, 2];
  const values = (k: number): Float32Array => new Float32Array(16 * 2).map((_, i) => Math.sin(i * k));

  it('rejects bad specs and residuals before any work, changing nothing', async () => {
    const bn = new BatchNorm2d(ctx, 4);
    const x = ctx.tensor(values(1.1), shape);
    const z = ctx.tensor(values(0.7), shape);
    const zLast = ctx.tensor(values(0.7), shape, { layout: 'channels_last' });
    const zSmall = ctx.tensor(values(0.7).slice(0, 16), [1, 4, 2, 2]);
    const out = ctx.tensor(values(0.3), shape);
    const before = JSON.stringify(await bn.stateDict());
    const other = await createContext({ backend });
    const foreign = other.tensor(values(0.7), shape);
    const slopes3 = ctx.tensor(new Float32Array(3), [3]);
    const slopes2d = ctx.tensor(new Float32Array(4), [4, 1]);
    const foreignSlopes = other.tensor(new Float32Array(4), [4]);
    const bad: Array<[unknown, new (m: string) => Error]> = [
      [{ activation: 'swish' }, ArgumentError],
      [{ activation: 'prelu' }, ArgumentError],
      [{ activation: { kind: 'gelu', approximate: 'erf' } }, ArgumentError],
      [{ activation: { kind: 'gelu', approx: 'tanh' } }, ArgumentError],
      [{ activation: { kind: 'elu', alpha: Number.NaN } }, ArgumentError],
      [{ activation: { kind: 'elu', alpha: '1' } }, ArgumentError],
      [{ activation: { kind: 'prelu' } }, ArgumentError],
      [{ activation: { kind: 'prelu', weight: [0.25, 0.25, 0.25, 0.25] } }, ArgumentError],
      [{ activation: { kind: 'prelu', weight: slopes3 } }, ShapeError],
      [{ activation: { kind: 'prelu', weight: slopes2d } }, ShapeError],
      [{ activation: { kind: 'prelu', weight: foreignSlopes } }, ContextMismatchError],
      [{ activation: { kind: 'clamp', min: 1, max: 1 } }, ArgumentError],
      [{ activation: { kind: 'clamp', min: 0, max: Number.POSITIVE_INFINITY } }, ArgumentError],
      [{ activation: { kind: 'leakyRelu', slope: -0.1 } }, ArgumentError],
      [{ activation: { kind: 'leakyRelu', slope: Number.NaN } }, ArgumentError],
      [{ activation: 'relu', residal: z }, ArgumentError],
      ['relu', ArgumentError],
      [{ residual: zLast }, ShapeError],
      [{ residual: zSmall }, ShapeError],
      [{ residual: foreign }, ContextMismatchError],
    ];
    const made = ctx.stats.buffersCreated;
    for (const [epilogue, cls] of bad) {
      expect(() => bn.forward(x, { epilogue: epilogue as Epilogue }), JSON.stringify(epilogue) ?? '').toThrow(cls);
      expect(() => batchNorm(ctx, x, { training: true, epilogue: epilogue as Epilogue })).toThrow(cls);
    }
    expect(() => bn.forward(x, { out, epilogue: { residual: out } })).toThrow(ArgumentError);
    expect(bn.numBatchesTracked).toBe(0);
    // No forward was recorded: there is nothing to differentiate.
    expect(() => bn.backward(z)).toThrow(BackwardStateError);
    expect(ctx.stats.buffersCreated).toBe(made);
    expect(JSON.stringify(await bn.stateDict())).toBe(before);
    foreign.destroy();
    foreignSlopes.destroy();
    other.destroy();
    for (const t of [x, z, zLast, zSmall, out, slopes3, slopes2d]) t.destroy();
    bn.destroy();
  });

  it('keeps the output for a ReLU-family backward and says so when it is gone', () => {
    const bn = new BatchNorm2d(ctx, 4);
    const x = ctx.tensor(values(1.1), shape);
    const dy = ctx.tensor(values(0.9), shape);
    const y = bn.forward(x, { epilogue: { activation: 'relu' } });
    y.destroy();
    expect(() => bn.backward(dy)).toThrow(DestroyedError);
    expect(() => bn.backward(dy)).toThrow(/output tensor .* was destroyed/);
    // SiLU recomputes its pre-activation from x: its output may go.
    const y2 = bn.forward(x, { epilogue: { activation: 'silu' } });
    y2.destroy();
    const r = bn.backward(dy);
    expect(r.gradInput).not.toBeNull();
    expect(r.gradResidual).toBeNull();
    for (const g of [r.gradInput, r.gradWeight, r.gradBias]) g?.destroy();
    // ...but not its residual.
    const z = ctx.tensor(values(0.7), shape);
    const y3 = bn.forward(x, { epilogue: { activation: 'silu', residual: z } });
    z.destroy();
    expect(() => bn.backward(dy)).toThrow(/residual tensor .* was destroyed/);
    y3.destroy();
    for (const t of [x, dy]) t.destroy();
    bn.destroy();
  });

  it('functional backward needs the output for a mask', () => {
    const x = ctx.tensor(values(1.1), shape);
    const dy = ctx.tensor(values(0.9), shape);
    const m = ctx.tensor(new Float32Array(4), [4]);
    const v = ctx.tensor(new Float32Array(4).fill(1), [4]);
    expect(() =>
      batchNormBackward(ctx, { gradOutput: dy, input: x, saveMean: m, saveInvstd: v, epilogue: { activation: 'relu6' } }),
    ).toThrow(/output \(the forward's y\) is required/);
    for (const t of [x, dy, m, v]) t.destroy();
  });
});

describe.runIf(available).each(BACKENDS)('saturating activations at extreme pre-activations on %s', (backend) => {
  let ctx: BatchNormContext;
  beforeAll(async () => {
    ctx = await contextFor(backend);
  });
  afterAll(() => ctx.destroy());

  it('stay finite and match torch float64 for |t| up to 1e30 (no exp overflow in the kernels)', async () => {
    // Eval with running mean 0, var 1, weight 1, bias 0 and x = 0: the pre-activation is the
    // residual itself, so t reaches values no normalized input would. WGSL may assume no Inf
    // (common/non-finite.wgsl): an exp that overflowed would give Inf or NaN here.
    const big = [-1e30, -1e4, -90, -30, -15, -3.5, 3.5, 15, 30, 90, 1e4, 1e30].map(Math.fround);
    const C = 4;
    const shape = [big.length, C];
    const residual = big.flatMap((v) => [v, -v, v, -v]);
    const size = residual.length;
    const names: ActivationName[] = ['silu', 'gelu', 'geluTanh', 'hardswish', 'sigmoid', 'tanh', 'elu', 'eluAlpha', 'prelu'];
    const cases: EpilogueCase[] = names.map((activation) => ({
      name: `${activation} extreme`,
      shape,
      training: false,
      eps: 1e-5,
      momentum: 0.1,
      activation,
      clampMin: 0,
      clampMax: 0,
      slope: 0,
      alpha: 0.7,
      preluWeight: activation === 'prelu' ? [0.25, -0.5, 0.1, 0] : null,
      input: new Array<number>(size).fill(0),
      residual,
      gradOutput: residual.map((_, i) => Math.fround(1 + (i % 3) * 0.25)),
      weight: new Array<number>(C).fill(1),
      bias: new Array<number>(C).fill(0),
      runningMean: new Array<number>(C).fill(0),
      runningVar: new Array<number>(C).fill(1),
    }));
    const refs = runReference(cases);
    for (const [i, c] of cases.entries()) {
      const ref = refs[i] as Reference;
      const got = await runPath(ctx, c, 'channels_first', 'module');
      // Relative bounds: outputs and gradients here are O(1) or O(|t|) (the identity branches).
      const tol = (v: number): number => 2e-6 + 2e-6 * Math.abs(v);
      for (const [what, actual, expected] of [
        ['output', got.output, ref.output],
        ['grad_residual', got.gradResidual, ref.grad_residual],
        ['grad_prelu_weight', got.gradPreluWeight, ref.grad_prelu_weight],
      ] as const) {
        if (!expected) continue;
        if (!actual) throw new Error(`${c.name}: no ${what}`);
        expect(
          Array.from(actual).every((v) => Number.isFinite(v)),
          `${backend} ${c.name} ${what} finite`,
        ).toBe(true);
        const r = checkClose(`[${backend}] ${c.name} ${what}`, actual, expected, (k) => tol(expected[k] as number));
        if (r.failure) throw new Error(r.failure);
      }
    }
  });

  it('propagate a NaN pre-activation to the output, as torch does', async () => {
    // Per-element code lets NaN flow through ordinary arithmetic (common/non-finite.wgsl); ELU
    // must not let its exp branch decide for a NaN t (it selects t wherever t ≤ 0 is false).
    const C = 4;
    const z = Float32Array.of(Number.NaN, 1, -1, 0.5, -2, Number.NaN, 3, -0.25);
    const x = ctx.tensor(new Float32Array(z.length), [2, C]);
    const residual = ctx.tensor(z, [2, C]);
    const slopes = ctx.tensor(Float32Array.of(0.25, -0.5, 0.1, 0), [C]);
    const activations: Activation[] = [
      'silu',
      'gelu',
      { kind: 'gelu', approximate: 'tanh' },
      'hardswish',
      'sigmoid',
      'tanh',
      'elu',
      { kind: 'prelu', weight: slopes },
    ];
    for (const activation of activations) {
      const bn = new BatchNorm1d(ctx, C).eval();
      const y = bn.forward(x, { epilogue: { activation, residual } });
      const out = await y.read();
      const label = `${backend} ${JSON.stringify(typeof activation === 'string' ? activation : activation.kind)}`;
      expect(Number.isNaN(out[0]), label).toBe(true);
      expect(Number.isNaN(out[5]), label).toBe(true);
      expect(Array.from(out).filter((v) => Number.isNaN(v)).length, label).toBe(2);
      y.destroy();
      bn.destroy();
    }
    for (const t of [x, residual, slopes]) t.destroy();
  });
});

describe.each(BACKENDS)('default forms of the new activations on %s', (backend) => {
  let ctx: BatchNormContext;
  beforeAll(async () => {
    ctx = await contextFor(backend);
  });
  afterAll(() => ctx.destroy());

  it("'gelu' is { kind: 'gelu', approximate: 'none' } and 'elu' is alpha 1.0; a PReLU weight must outlive backward", async () => {
    const shape = [2, 3, 2, 2];
    const x = ctx.tensor(
      new Float32Array(24).map((_, i) => Math.sin(i * 1.3)),
      shape,
    );
    const dy = ctx.tensor(
      new Float32Array(24).map((_, i) => Math.cos(i * 0.7)),
      shape,
    );
    const run = async (activation: Activation): Promise<number[][]> => {
      const bn = new BatchNorm2d(ctx, 3);
      const y = bn.forward(x, { epilogue: { activation } });
      const r = bn.backward(dy);
      const out = [Array.from(await y.read()), Array.from(await (r.gradInput as Tensor).read())];
      for (const t of [y, r.gradInput, r.gradWeight, r.gradBias, r.gradPreluWeight]) t?.destroy();
      bn.destroy();
      return out;
    };
    const gelu = await run('gelu');
    expect(gelu).toEqual(await run({ kind: 'gelu' }));
    expect(gelu).toEqual(await run({ kind: 'gelu', approximate: 'none' }));
    expect(gelu).not.toEqual(await run({ kind: 'gelu', approximate: 'tanh' }));
    expect(await run('elu')).toEqual(await run({ kind: 'elu', alpha: 1 }));
    // A [1] slope is the same as that slope repeated per channel (nn.PReLU() vs num_parameters=C).
    const one = ctx.tensor(Float32Array.of(-0.25), [1]);
    const three = ctx.tensor(Float32Array.of(-0.25, -0.25, -0.25), [3]);
    expect(await run({ kind: 'prelu', weight: one })).toEqual(await run({ kind: 'prelu', weight: three }));
    // The slope is read again by backward: destroyed in between, backward says so.
    const bn = new BatchNorm2d(ctx, 3);
    const y = bn.forward(x, { epilogue: { activation: { kind: 'prelu', weight: three } } });
    three.destroy();
    expect(() => bn.backward(dy)).toThrow(DestroyedError);
    expect(() => bn.backward(dy)).toThrow(/PReLU weight tensor .* was destroyed/);
    for (const t of [x, dy, y, one]) t.destroy();
    bn.destroy();
  });
});

describe.each(BACKENDS)('clamp bounds in float32 on %s', (backend) => {
  let ctx: BatchNormContext;
  beforeAll(async () => {
    ctx = await contextFor(backend);
  });
  afterAll(() => ctx.destroy());

  it('saturates and masks at the float32 bounds, as torch and the kernels do', async () => {
    // Eval with running mean 0, var 1 and x = 0: the pre-activation is the residual itself. -0.3
    // and 0.7 are not float32 numbers; torch (hardtanh on a float32 tensor) and the kernels
    // compare in float32, so an output saturated at fround(0.7) < 0.7 has gradient 0, as has a
    // pre-activation exactly at a float32 bound. Reference: torch 1.13 F.hardtanh(z, -0.3, 0.7).
    const residual = [2, -2, 0.1, 0.2, 0.7, -0.3];
    const bn = new BatchNorm1d(ctx, 1).eval();
    const x = ctx.tensor(new Float32Array(6), [6, 1]);
    const z = ctx.tensor(Float32Array.from(residual), [6, 1]);
    const dy = ctx.tensor(new Float32Array(6).fill(1), [6, 1]);
    const y = bn.forward(x, { epilogue: { activation: { kind: 'clamp', min: -0.3, max: 0.7 }, residual: z } });
    const hi = Math.fround(0.7);
    const lo = Math.fround(-0.3);
    expect(Array.from(await y.read())).toEqual([hi, lo, Math.fround(0.1), Math.fround(0.2), hi, lo]);
    const r = bn.backward(dy);
    expect(Array.from(await (r.gradResidual as Tensor).read())).toEqual([0, 0, 1, 1, 0, 0]);
    for (const t of [x, z, dy, y, r.gradInput, r.gradWeight, r.gradBias, r.gradResidual]) t?.destroy();
    bn.destroy();
  });
});

describe.each(BACKENDS)("'leakyRelu' as a string on %s", (backend) => {
  let ctx: BatchNormContext;
  beforeAll(async () => {
    ctx = await contextFor(backend);
  });
  afterAll(() => ctx.destroy());

  it("is { kind: 'leakyRelu', slope: 0.01 } (torch's default) in the module, functional and backward APIs", async () => {
    const shape = [2, 3, 2, 2];
    const n = 24;
    const x = ctx.tensor(
      new Float32Array(n).map((_, i) => Math.sin(i * 1.3)),
      shape,
    );
    const dy = ctx.tensor(
      new Float32Array(n).map((_, i) => Math.cos(i * 0.7)),
      shape,
    );
    const runs = async (activation: Activation): Promise<number[][]> => {
      const bn = new BatchNorm2d(ctx, 3);
      const y = bn.forward(x, { epilogue: { activation } });
      const r = bn.backward(dy);
      const mean = ctx.tensor(new Float32Array(3), [3]);
      const variance = ctx.tensor(new Float32Array(3).fill(1), [3]);
      const yf = batchNorm(ctx, x, { training: false, runningMean: mean, runningVar: variance, epilogue: { activation } });
      const rf = batchNormBackward(ctx, {
        gradOutput: dy,
        input: x,
        output: yf,
        training: false,
        runningMean: mean,
        runningVar: variance,
        epilogue: { activation },
      });
      const read = async (t: Tensor | null): Promise<number[]> => Array.from(t ? await t.read() : []);
      const out = [await read(y), await read(r.gradInput), await read(r.gradWeight), await read(yf), await read(rf.gradInput)];
      for (const t of [y, yf, mean, variance, r.gradInput, r.gradWeight, r.gradBias, rf.gradInput]) t?.destroy();
      bn.destroy();
      return out;
    };
    const fromString = await runs('leakyRelu');
    expect(fromString).toEqual(await runs({ kind: 'leakyRelu', slope: 0.01 }));
    expect(fromString).toEqual(await runs({ kind: 'leakyRelu' }));
    // The negative side really is scaled (not relu, not identity).
    expect(fromString[0]?.some((v) => v < 0)).toBe(true);
    // clamp has no default bounds: no string form.
    expect(() => batchNorm(ctx, x, { training: true, epilogue: { activation: 'clamp' as Activation } })).toThrow(ArgumentError);
    for (const t of [x, dy]) t.destroy();
  });
});

describe('epilogue on caller encoders (WebGPU)', () => {
  let ctx: BatchNormContext;
  beforeAll(async () => {
    ctx = await contextFor('webgpu');
  });
  afterAll(() => ctx.destroy());
  const shape = [2, 8, 2, 2];
  const values = (k: number): Float32Array => new Float32Array(64).map((_, i) => Math.sin(i * k));

  it('rejects a gradResidual without a residual, or one that aliases an input', () => {
    const bn = new BatchNorm2d(ctx, 8);
    const x = ctx.tensor(values(1.1), shape);
    const dy = ctx.tensor(values(0.9), shape);
    const y = ctx.tensor(values(0.2), shape);
    const z = ctx.tensor(values(0.7), shape);
    const g = ctx.tensor(values(0.5), shape);
    const device = ctx.device as GPUDevice;
    const encoder = device.createCommandEncoder();
    bn.encodeForward(encoder, x, y, { epilogue: { activation: 'relu' } });
    expect(() => bn.encodeBackward(encoder, dy, { gradInput: g, gradResidual: z })).toThrow(/no epilogue.residual/);
    bn.encodeForward(encoder, x, y, { epilogue: { activation: 'relu', residual: z } });
    expect(() => bn.encodeBackward(encoder, dy, { gradInput: g, gradResidual: dy })).toThrow(
      /gradResidual .*shares memory with gradOutput/,
    );
    expect(() => bn.encodeBackward(encoder, dy, { gradInput: g, gradResidual: y })).toThrow(
      /gradResidual .*shares memory with the forward output/,
    );
    // Residual gradient alone (gradInput not asked for) is a valid request.
    bn.encodeBackward(encoder, dy, { gradResidual: g });
    device.queue.submit([encoder.finish()]);
    for (const t of [x, dy, y, z, g]) t.destroy();
    bn.destroy();
  });

  it('writes the same gradResidual with and without gradInput (GRAD_INPUT off), from either pass', async () => {
    for (const activation of ['relu', 'silu'] as const) {
      const bn = new BatchNorm2d(ctx, 8);
      const x = ctx.tensor(values(1.1), shape);
      const dy = ctx.tensor(values(0.9), shape);
      const z = ctx.tensor(values(0.7), shape);
      const y = bn.forward(x, { epilogue: { activation, residual: z } });
      const full = bn.backward(dy);
      const alone = ctx.tensor(new Float32Array(64), shape);
      const device = ctx.device as GPUDevice;
      const encoder = device.createCommandEncoder();
      bn.encodeBackward(encoder, dy, { gradResidual: alone });
      device.queue.submit([encoder.finish()]);
      await ctx.sync();
      const expected = await (full.gradResidual as Tensor).read();
      expect(Array.from(await alone.read())).toEqual(Array.from(expected));
      expect(expected.some((v) => v !== 0)).toBe(true);
      // Eval without weight gradients has no reduce pass: the elementwise pass writes gradResidual
      // itself; with one, the reduce pass does and the elementwise pass reads it back. Same values.
      const yEval = bn.eval().forward(x, { epilogue: { activation, residual: z } });
      const withReduce = bn.backward(dy);
      const withoutReduce = bn.backward(dy, { outputMask: [true, false, false] });
      expect(Array.from(await (withoutReduce.gradInput as Tensor).read())).toEqual(
        Array.from(await (withReduce.gradInput as Tensor).read()),
      );
      expect(Array.from(await (withoutReduce.gradResidual as Tensor).read())).toEqual(
        Array.from(await (withReduce.gradResidual as Tensor).read()),
      );
      for (const r of [full, withReduce, withoutReduce])
        for (const t of [r.gradInput, r.gradWeight, r.gradBias, r.gradResidual]) t?.destroy();
      for (const t of [x, dy, z, y, yEval, alone]) t.destroy();
      bn.destroy();
    }
  });

  it('binds exactly what each epilogue kernel variant declares, and allocates nothing in steady state', async () => {
    const bound = new Map<string, string[]>();
    const realGet = BindGroupCache.prototype.get;
    const spy = vi.spyOn(BindGroupCache.prototype, 'get').mockImplementation(function (this: BindGroupCache, kernel, resources) {
      bound.set(kernel.key.split('|')[0] ?? '', Object.keys(resources).sort());
      return realGet.call(this, kernel, resources);
    });
    const device = ctx.device as GPUDevice;
    try {
      // float16 runs the half entries with every epilogue: word walks, and anyh for odd spatial.
      const shapes: Array<[number[], Layout]> = [
        [[2, 8, 2, 2], 'channels_first'],
        [[2, 8, 3, 3], 'channels_first'],
        [[2, 8, 3, 3], 'channels_last'],
        [[2, 6, 3, 3], 'channels_last'],
      ];
      // ... and odd C channels-last, for the half reductions' single-value entries.
      const variants = [
        ...shapes.flatMap(([sh, l]) => (['float32', 'float16'] as const).map((d) => [sh, l, d] as const)),
        [[2, 5, 3, 3], 'channels_last', 'float16'] as const,
      ];
      for (const [s, layout, dtype] of variants) {
        const n = s.reduce((a, b) => a * b, 1);
        const mk = (k: number): Tensor =>
          ctx.tensor(
            new Float32Array(n).map((_, i) => Math.sin(i * k)),
            s,
            { layout, dtype },
          );
        const [x, dy, y, z, gi, gr] = [mk(1.1), mk(0.9), mk(0.2), mk(0.7), mk(0.3), mk(0.4)];
        const bn = new BatchNorm2d(ctx, s[1] ?? 0);
        const C = s[1] ?? 0;
        const slopes = ctx.tensor(
          new Float32Array(C).map((_, i) => 0.3 - 0.1 * i),
          [C],
        );
        const gp = ctx.tensor(new Float32Array(C), [C]);
        const step = (activation: Activation, training: boolean): void => {
          bn.train(training);
          const encoder = device.createCommandEncoder();
          bn.encodeForward(encoder, x, y, { epilogue: { activation, residual: z } });
          // PReLU also runs its weight-gradient reduction (a second reduce + finalize).
          const gradPreluWeight = typeof activation === 'object' && activation.kind === 'prelu' ? gp : null;
          bn.encodeBackward(encoder, dy, { gradInput: gi, gradResidual: gr, gradPreluWeight });
          device.queue.submit([encoder.finish()]);
        };
        const activations: Activation[] = ['relu', 'silu', 'gelu', { kind: 'prelu', weight: slopes }];
        for (const a of activations) {
          for (const training of [true, false]) {
            // Two warm-up steps: training alternates between two num_batches_tracked slots.
            step(a, training);
            step(a, training);
            await ctx.sync();
            const made = ctx.stats.buffersCreated;
            for (let k = 0; k < 3; k++) step(a, training);
            await ctx.sync();
            expect(ctx.stats.buffersCreated, `${typeof a === 'string' ? a : a.kind} ${training ? 'train' : 'eval'} steady state`).toBe(
              made,
            );
          }
        }
        bn.destroy();
        for (const t of [x, dy, y, z, gi, gr, slopes, gp]) t.destroy();
      }
    } finally {
      spy.mockRestore();
    }
    for (const id of ['normalize', 'backward-reduce', 'backward-elementwise'] as const) {
      for (const [name, entry] of reflectShader(shaderSpecs[id])) {
        const names = bound.get(`${id}.${name}`);
        if (name === 'reduce_finalize') continue;
        expect(names, `${id}.${name} was never dispatched with an epilogue`).toBeDefined();
        expect(names).toEqual(entry.bindings.map((b) => b.name).sort());
      }
    }
  });
});
