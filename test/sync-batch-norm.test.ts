/**
 * SyncBatchNorm: one batch split unevenly over k shards, each with its own context (separate
 * GPUDevices in one process, CPU contexts, and a mix), must equal PyTorch's BatchNorm on the
 * concatenated batch: every shard's output slice, every shard's running statistics and
 * num_batches_tracked, every shard's grad_input slice, and grad_weight / grad_bias (the whole
 * batch's, on every shard). References: live PyTorch (test/torch/reference.py, float64) on the
 * concatenated float32 inputs, which is what torch's SyncBatchNorm computes across ranks
 * (torch/nn/modules/_functions.py: merged statistics, grad_input with the global count).
 *
 * Also: the merges are order-independent bit for bit, match float64 two-pass statistics, and the
 * zero-copy GPU records decode to the same partials.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  ArgumentError,
  BackwardStateError,
  InsufficientValuesError,
  ShapeError,
  type BatchNormContext,
  type Layout,
  type Tensor,
} from '../src/index.js';
import {
  MOMENTS_RECORD_BYTES,
  SyncBatchNorm,
  decodeMomentsRecords,
  gradSumsFromArray,
  gradSumsToArray,
  mergeGradSums,
  mergeMoments,
  momentsFromArray,
  momentsToArray,
  type ChannelMoments,
  type GradSums,
} from '../src/sync/index.js';
import { caseCounter, checkClose, contextFor, fromLayout, gaussian, rng, toLayout, type Backend } from './helpers/backends.js';
import { OUTPUT_ABS, OUTPUT_REL } from './helpers/run-case.js';
import { runTorchReference, torchAvailable, type TorchCase, type TorchModuleKind, type TorchResult } from './helpers/torch-reference.js';

const count = caseCounter('sync batch norm');

/**
 * Gradient tolerances, as in test/backward.test.ts (see there for the derivation): ρ times the
 * sum of the magnitudes of each gradient's terms, with ŷ = (x − mean)·invstd of the whole batch,
 * gs = invstd·|weight|, A = mean|dy|, B = mean|dy·ŷ| per channel:
 *   grad_bias ρ·Σ|dy|;  grad_weight ρ·(Σ|dy| + Σ|dy·ŷ|);  grad_input ρ·gs·(|dy| + (1 + |ŷ|)·(A + B)).
 * ρ = 1e-5 when any shard runs on WebGPU (float32 blocked sums on each shard; the merge across
 * shards is float64 and adds nothing), 1e-6 when all shards run on the CPU (float64 throughout,
 * one rounding per element).
 */
const RHO_WEBGPU = 1e-5;
const RHO_CPU = 1e-6;

/** Largest errors against PyTorch seen per setup and quantity, printed at the end. */
const worst: Record<string, Record<string, number>> = {};
afterAll(() => console.log(`[max error] sync batch norm vs PyTorch: ${JSON.stringify(worst)}`));
function note(setup: string, quantity: string, err: number): void {
  worst[setup] ??= {};
  const w = worst[setup];
  w[quantity] = Math.max(w[quantity] ?? 0, err);
}

// ------------------------------------------------------------------ merges (no backend)

/** Two-pass float64 statistics around the first value (x − K is exact for float32 inputs). */
function twoPass(values: readonly number[]): { mean: number; m2: number } {
  const k = values[0] ?? 0;
  let s = 0;
  for (const v of values) s += v - k;
  const d = s / values.length;
  let m2 = 0;
  for (const v of values) m2 += (v - k - d) * (v - k - d);
  return { mean: k + d, m2 };
}

function momentsOf(values: readonly (readonly number[])[]): ChannelMoments {
  const c = values.length;
  const out = { count: new Float64Array(c), mean: new Float64Array(c), m2: new Float64Array(c) };
  values.forEach((v, ch) => {
    const t = twoPass(v);
    out.count[ch] = v.length;
    out.mean[ch] = v.length ? t.mean : 0;
    out.m2[ch] = v.length ? t.m2 : 0;
  });
  return out;
}

function permutations<T>(xs: readonly T[]): T[][] {
  if (xs.length <= 1) return [[...xs]];
  const out: T[][] = [];
  xs.forEach((x, i) => {
    for (const rest of permutations([...xs.slice(0, i), ...xs.slice(i + 1)])) out.push([x, ...rest]);
  });
  return out;
}

const bits = (a: Float64Array): string => Buffer.from(a.buffer, a.byteOffset, a.byteLength).toString('hex');

describe('merging partials', () => {
  const next = rng(77);
  // Three channels: plain, offset (mean 1e4, std 0.1), wide; split over 5 shards of uneven size,
  // one of them empty.
  const sizes = [7, 0, 31, 2, 13];
  const channelData = (ch: number, n: number): number[] =>
    Array.from({ length: n }, () => Math.fround(ch === 1 ? 1e4 + 0.1 * gaussian(next) : ch === 2 ? 50 * gaussian(next) : gaussian(next)));
  const shards = sizes.map((n) => [0, 1, 2].map((ch) => channelData(ch, n)));
  const partials = shards.map((s) => momentsOf(s));

  it('mergeMoments equals two-pass float64 statistics of the whole batch', () => {
    const merged = mergeMoments(partials);
    for (let ch = 0; ch < 3; ch++) {
      const all = shards.flatMap((s) => s[ch] as number[]);
      const ref = twoPass(all);
      expect(merged.count[ch]).toBe(all.length);
      // float64 Chan merges: a few ulp of the mean, and of M2 relative to its size.
      expect(Math.abs((merged.mean[ch] as number) - ref.mean)).toBeLessThanOrEqual(1e-14 * Math.max(1, Math.abs(ref.mean)));
      // M2: the partial means are float64 values near |mean|, each off by up to δ = 2^-53·|mean|,
      // which moves M2 by up to 2·n·σ·δ (σ the standard deviation); plus a few ulp of M2 itself.
      const sigma = Math.sqrt(ref.m2 / all.length);
      const delta = 2 ** -53 * Math.abs(ref.mean);
      expect(Math.abs((merged.m2[ch] as number) - ref.m2)).toBeLessThanOrEqual(
        1e-13 * ref.m2 + 2 * all.length * sigma * delta * sizes.length,
      );
    }
  });

  it('mergeMoments and mergeGradSums give the same bits for every order of the partials (120 permutations)', () => {
    const grads: GradSums[] = sizes.map(() => ({
      sumDy: Float64Array.from([0, 1, 2], () => gaussian(next) * 1e3),
      sumDyXhat: Float64Array.from([0, 1, 2], () => gaussian(next) * 1e-3),
    }));
    const m0 = mergeMoments(partials);
    const g0 = mergeGradSums(grads);
    const ref = [bits(m0.count), bits(m0.mean), bits(m0.m2), bits(g0.sumDy), bits(g0.sumDyXhat)].join();
    const order = sizes.map((_, i) => i);
    let n = 0;
    for (const p of permutations(order)) {
      const m = mergeMoments(p.map((i) => partials[i] as ChannelMoments));
      const g = mergeGradSums(p.map((i) => grads[i] as GradSums));
      expect([bits(m.count), bits(m.mean), bits(m.m2), bits(g.sumDy), bits(g.sumDyXhat)].join()).toBe(ref);
      n++;
    }
    expect(n).toBe(120);
  });

  it('packs to one Float64Array and back', () => {
    const p = partials[0] as ChannelMoments;
    const back = momentsFromArray(momentsToArray(p));
    expect(bits(back.mean)).toBe(bits(p.mean));
    expect(bits(back.m2)).toBe(bits(p.m2));
    expect(bits(back.count)).toBe(bits(p.count));
    const g = { sumDy: Float64Array.of(1, 2), sumDyXhat: Float64Array.of(3, 4) };
    expect(Array.from(gradSumsToArray(g))).toEqual([1, 2, 3, 4]);
    expect(Array.from(gradSumsFromArray(Float64Array.of(1, 2, 3, 4)).sumDyXhat)).toEqual([3, 4]);
  });

  it('rejects malformed partials with typed errors', () => {
    const ok = partials[0] as ChannelMoments;
    expect(() => mergeMoments([])).toThrow(ArgumentError);
    expect(() => mergeMoments([ok, { ...ok, mean: new Float64Array(2) }])).toThrow(ShapeError);
    expect(() => mergeMoments([ok, { ...ok, m2: new Float32Array(3) as unknown as Float64Array }])).toThrow(ArgumentError);
    expect(() => mergeMoments([{ ...ok, count: Float64Array.of(1.5, 1, 1) }])).toThrow(/count\[0\] must be a non-negative integer/);
    expect(() => mergeGradSums([{ sumDy: new Float64Array(2), sumDyXhat: new Float64Array(3) }])).toThrow(ShapeError);
    expect(() => momentsFromArray(new Float64Array(4))).toThrow(ShapeError);
  });
});

// ------------------------------------------------------------------ against PyTorch

interface SyncCase {
  readonly name: string;
  readonly module: TorchModuleKind;
  readonly channels: number;
  readonly spatial: readonly number[];
  /** Batch items per shard; their sum is the batch PyTorch sees. */
  readonly split: readonly number[];
  readonly momentum: number | null;
  readonly eps: number;
  readonly affine: boolean;
  readonly offset: number;
  readonly std: number;
  /** Training steps; the last one also runs the backward. */
  readonly steps: number;
  /** Default true. */
  readonly track?: boolean;
  /** Then one eval-mode step (local, running statistics), compared with PyTorch's eval. */
  readonly evalStep?: boolean;
}

const CASES: readonly SyncCase[] = [
  {
    name: '2d_C3_split1-2-4_then_eval',
    module: 'BatchNorm2d',
    channels: 3,
    spatial: [5, 4],
    split: [1, 2, 4],
    momentum: 0.1,
    eps: 1e-5,
    affine: true,
    offset: 0,
    std: 1,
    steps: 2,
    evalStep: true,
  },
  {
    name: '1d_C6_split2-3-4_cumulative_offset_then_eval',
    module: 'BatchNorm1d',
    channels: 6,
    spatial: [],
    split: [2, 3, 4],
    momentum: null,
    eps: 1e-5,
    affine: true,
    offset: 1e4,
    std: 0.1,
    steps: 3,
    evalStep: true,
  },
  {
    name: '2d_C5_split3-1_no_running_stats',
    module: 'BatchNorm2d',
    channels: 5,
    spatial: [2, 6],
    split: [3, 1],
    momentum: 0.1,
    eps: 1e-5,
    affine: true,
    offset: 0,
    std: 1.5,
    steps: 1,
    track: false,
  },
  {
    name: '3d_C4_split2-3_noaffine_scalar',
    module: 'BatchNorm3d',
    channels: 4,
    spatial: [3, 2, 3],
    split: [2, 3],
    momentum: 0.3,
    eps: 1e-3,
    affine: false,
    offset: 0,
    std: 2,
    steps: 2,
  },
  {
    name: '1d_NCL_C5_split1-1-4_cumulative',
    module: 'BatchNorm1d',
    channels: 5,
    spatial: [7],
    split: [1, 1, 4],
    momentum: null,
    eps: 1e-5,
    affine: true,
    offset: -3,
    std: 0.5,
    steps: 2,
  },
];

interface Generated {
  readonly torch: TorchCase;
  /** Per step: the concatenated logical input and gradient (last step only). */
  readonly inputs: number[][];
  readonly gradOutput: number[];
  readonly init: { weight: number[]; bias: number[]; running_mean: number[]; running_var: number[]; num_batches_tracked: number };
}

function generate(c: SyncCase, seed: number): Generated {
  const next = rng(seed);
  const n = c.split.reduce((a, b) => a + b, 0);
  const shape = [n, c.channels, ...c.spatial];
  const size = shape.reduce((a, b) => a * b, 1);
  const per = size / (n * c.channels);
  const sample = (): number[] =>
    Array.from({ length: size }, (_, i) => Math.fround(c.offset + 0.25 * (Math.floor(i / per) % c.channels) + c.std * gaussian(next)));
  const inputs = Array.from({ length: c.steps + (c.evalStep ? 1 : 0) }, sample);
  const gradOutput = Array.from({ length: size }, () => Math.fround(gaussian(next)));
  const C = c.channels;
  const init = {
    weight: Array.from({ length: C }, () => (c.affine ? Math.fround(0.5 + next()) : 1)),
    bias: Array.from({ length: C }, () => (c.affine ? Math.fround(next() - 0.5) : 0)),
    running_mean: Array.from({ length: C }, () => Math.fround(c.offset + next())),
    running_var: Array.from({ length: C }, () => Math.fround(0.5 + next())),
    num_batches_tracked: 2,
  };
  const torch: TorchCase = {
    name: c.name,
    module: c.module,
    num_features: C,
    eps: c.eps,
    momentum: c.momentum,
    affine: c.affine,
    track_running_stats: c.track !== false,
    init: initState(c, init),
    steps: inputs.map((input, k) => ({ training: k < c.steps, shape, input, grad_output: k === c.steps - 1 ? gradOutput : null })),
  };
  return { torch, inputs, gradOutput, init };
}

/** The state dict both sides start from: only the keys the configuration has. */
function initState(c: SyncCase, init: Generated['init']): Partial<Generated['init']> {
  const running =
    c.track !== false
      ? { running_mean: init.running_mean, running_var: init.running_var, num_batches_tracked: init.num_batches_tracked }
      : {};
  return c.affine ? { weight: init.weight, bias: init.bias, ...running } : running;
}

function ulp32(v: number): number {
  const a = Math.abs(v);
  return a === 0 ? 2 ** -149 : 2 ** (Math.floor(Math.log2(a)) - 23);
}

/** Logical rows [from, to) of the batch dimension of a (N, C, ...) row-major array. */
function batchSlice(values: readonly number[], shape: readonly number[], from: number, to: number): number[] {
  const item = shape.slice(1).reduce((a, b) => a * b, 1);
  return values.slice(from * item, to * item);
}

/** Per-element / per-channel gradient scales of the whole batch (see the tolerance note). */
function gradScales(x: readonly number[], dy: readonly number[], shape: readonly number[], eps: number, weight: readonly number[]) {
  const [n = 0, C = 0] = shape;
  const s = x.length / (n * C);
  const idx = (i: number, ch: number, k: number): number => (i * C + ch) * s + k;
  const mean = new Float64Array(C);
  const invstd = new Float64Array(C);
  const sumAbsDy = new Float64Array(C);
  const sumAbsDyXhat = new Float64Array(C);
  const gradInput = new Float64Array(x.length);
  for (let ch = 0; ch < C; ch++) {
    const vals: number[] = [];
    for (let i = 0; i < n; i++) for (let k = 0; k < s; k++) vals.push(x[idx(i, ch, k)] as number);
    const t = twoPass(vals);
    mean[ch] = t.mean;
    invstd[ch] = 1 / Math.sqrt(t.m2 / vals.length + eps);
    for (let i = 0; i < n; i++)
      for (let k = 0; k < s; k++) {
        const j = idx(i, ch, k);
        const xhat = ((x[j] as number) - t.mean) * (invstd[ch] as number);
        sumAbsDy[ch] = (sumAbsDy[ch] as number) + Math.abs(dy[j] as number);
        sumAbsDyXhat[ch] = (sumAbsDyXhat[ch] as number) + Math.abs((dy[j] as number) * xhat);
      }
    const m = n * s;
    const gs = (invstd[ch] as number) * Math.abs(weight[ch] as number);
    const a = (sumAbsDy[ch] as number) / m;
    const b = (sumAbsDyXhat[ch] as number) / m;
    for (let i = 0; i < n; i++)
      for (let k = 0; k < s; k++) {
        const j = idx(i, ch, k);
        const xhat = Math.abs(((x[j] as number) - t.mean) * (invstd[ch] as number));
        gradInput[j] = gs * (Math.abs(dy[j] as number) + (1 + xhat) * (a + b));
      }
  }
  const gradBias = Float64Array.from(sumAbsDy);
  const gradWeight = Float64Array.from(sumAbsDy, (v, ch) => v + (sumAbsDyXhat[ch] as number));
  return { gradInput, gradWeight, gradBias };
}

const SETUPS: Readonly<Record<string, readonly Backend[]>> = {
  'webgpu x3 (three GPUDevices)': ['webgpu', 'webgpu', 'webgpu'],
  'cpu x3': ['cpu', 'cpu', 'cpu'],
  'mixed webgpu/cpu/webgpu': ['webgpu', 'cpu', 'webgpu'],
};

const available = torchAvailable();

describe.runIf(available).each(Object.keys(SETUPS))('split batch vs PyTorch BatchNorm on the concatenated batch: %s', (setup) => {
  const backends = SETUPS[setup] as readonly Backend[];
  let contexts: BatchNormContext[] = [];
  const generated = CASES.map((c, i) => generate(c, 4242 + 31 * i));
  let results: TorchResult[] = [];
  beforeAll(async () => {
    contexts = [];
    for (const b of backends) contexts.push(await contextFor(b));
    results = runTorchReference(generated.map((g) => g.torch));
  });
  afterAll(() => {
    for (const ctx of contexts) ctx.destroy();
  });

  it('distinct devices per WebGPU shard', () => {
    const devices = contexts.map((c) => c.device).filter((d) => d !== null);
    expect(new Set(devices).size).toBe(devices.length);
  });

  CASES.forEach((c, caseIndex) => {
    const layouts: Layout[] = c.spatial.length > 0 ? ['channels_first', 'channels_last'] : ['channels_first'];
    for (const layout of layouts) {
      it(`${c.name} ${layout}`, async () => {
        const gen = generated[caseIndex] as Generated;
        const ref = results[caseIndex];
        if (!ref) throw new Error(`no reference for ${c.name}`);
        expect(ref.error, `${c.name}: torch raised`).toBeNull();
        const k = c.split.length;
        const ctxs = Array.from({ length: k }, (_, i) => contexts[i % contexts.length] as BatchNormContext);
        const shardBackends = Array.from({ length: k }, (_, i) => backends[i % backends.length] as Backend);
        const rho = shardBackends.includes('webgpu') ? RHO_WEBGPU : RHO_CPU;
        const modules = ctxs.map(
          (ctx) =>
            new SyncBatchNorm(ctx, c.channels, {
              momentum: c.momentum,
              eps: c.eps,
              affine: c.affine,
              trackRunningStats: c.track !== false,
            }),
        );
        const sd = initState(c, gen.init);
        for (const m of modules) m.loadStateDict(sd);
        const n = c.split.reduce((a, b) => a + b, 0);
        const shape = [n, c.channels, ...c.spatial];
        const bounds = c.split.map((_, i) => c.split.slice(0, i).reduce((a, b) => a + b, 0));
        const shardShape = (i: number): number[] => [c.split[i] as number, c.channels, ...c.spatial];
        const live: Tensor[] = [];
        const upload = (i: number, logical: readonly number[]): Tensor => {
          const t = (ctxs[i] as BatchNormContext).tensor(
            toLayout(
              batchSlice(logical, shape, bounds[i] as number, (bounds[i] as number) + (c.split[i] as number)),
              shardShape(i),
              layout,
            ),
            shardShape(i),
            { layout },
          );
          live.push(t);
          return t;
        };
        try {
          for (let step = 0; step < c.steps + (c.evalStep ? 1 : 0); step++) {
            const expected = ref.steps[step];
            if (!expected) throw new Error(`${c.name}: no reference step ${step}`);
            const xs = modules.map((_, i) => upload(i, gen.inputs[step] as number[]));
            if (step === c.steps) {
              // Eval mode: each shard normalizes locally with its (identical) running statistics.
              for (let i = 0; i < k; i++) {
                const m = modules[i] as SyncBatchNorm;
                const y = m.eval().forward(xs[i] as Tensor);
                live.push(y);
                const got = fromLayout(await y.read(), shardShape(i), layout);
                const from = bounds[i] as number;
                const want = batchSlice(expected.output, shape, from, from + (c.split[i] as number));
                const rm = (await m.runningMean?.read()) ?? new Float32Array(c.channels);
                const rv = (await m.runningVar?.read()) ?? new Float32Array(c.channels);
                const item = want.length / (c.split[i] as number);
                const per = item / c.channels;
                // As in run-case.ts: plus 4 ulp(running_mean)·|weight|·invstd, because running_mean
                // is float32 state here and in PyTorch's module but float64 in the reference.
                const out = checkClose(`${c.name} ${layout} eval shard ${i}`, got, want, (j) => {
                  const ch = Math.floor((j % item) / per);
                  const invstd = 1 / Math.sqrt((rv[ch] as number) + c.eps);
                  return (
                    OUTPUT_ABS +
                    OUTPUT_REL * Math.abs(want[j] ?? 0) +
                    4 * ulp32(rm[ch] as number) * Math.abs(expected.state.weight?.[ch] ?? 1) * invstd
                  );
                });
                expect(out.failure).toBeNull();
                note(setup, 'eval output', out.maxErr);
              }
              continue;
            }
            // Partials arrive in shard order on some shards and reversed on others: the merge
            // must not care.
            const partials = await Promise.all(modules.map((m, i) => m.momentsPartial(xs[i] as Tensor)));
            const merged = mergeMoments(partials);
            expect(bits(mergeMoments([...partials].reverse()).m2)).toBe(bits(merged.m2));
            const ys = modules.map((m, i) => m.forward(xs[i] as Tensor, merged));
            live.push(...ys);
            for (let i = 0; i < k; i++) {
              const where = `${c.name} ${layout} step ${step} shard ${i} (${shardBackends[i]})`;
              const got = fromLayout(await (ys[i] as Tensor).read(), shardShape(i), layout);
              const want = batchSlice(expected.output, shape, bounds[i] as number, (bounds[i] as number) + (c.split[i] as number));
              const out = checkClose(`${where} output`, got, want, (j) => OUTPUT_ABS + OUTPUT_REL * Math.abs(want[j] ?? 0));
              expect(out.failure).toBeNull();
              note(setup, 'output', out.maxErr);
              const state = await (modules[i] as SyncBatchNorm).stateDict();
              if (c.track === false) {
                expect(state.running_mean).toBeUndefined();
                expect(state.num_batches_tracked).toBeUndefined();
                continue;
              }
              const rm = checkClose(
                `${where} running_mean`,
                state.running_mean ?? [],
                expected.state.running_mean ?? [],
                (j) => 1e-6 + 2e-6 * Math.abs(expected.state.running_mean?.[j] ?? 0),
              );
              const rv = checkClose(
                `${where} running_var`,
                state.running_var ?? [],
                expected.state.running_var ?? [],
                (j) => 1e-6 + 1e-5 * Math.abs(expected.state.running_var?.[j] ?? 0),
              );
              expect(rm.failure).toBeNull();
              expect(rv.failure).toBeNull();
              note(setup, 'running_mean', rm.maxErr);
              note(setup, 'running_var', rv.maxErr);
              expect(state.num_batches_tracked).toBe(expected.state.num_batches_tracked);
            }
            if (step !== c.steps - 1) continue;

            const dys = modules.map((_, i) => upload(i, gen.gradOutput));
            const gradPartials = await Promise.all(modules.map((m, i) => m.gradPartial(dys[i] as Tensor)));
            const mergedGrad = mergeGradSums([...gradPartials].reverse());
            const grads = modules.map((m, i) => m.backward(dys[i] as Tensor, mergedGrad));
            const sc = gradScales(gen.inputs[step] as number[], gen.gradOutput, shape, c.eps, gen.init.weight);
            for (let i = 0; i < k; i++) {
              const where = `${c.name} ${layout} shard ${i} (${shardBackends[i]})`;
              const g = grads[i];
              if (!g?.gradInput) throw new Error(`${where}: no grad_input`);
              live.push(g.gradInput);
              const from = bounds[i] as number;
              const to = from + (c.split[i] as number);
              const gi = fromLayout(await g.gradInput.read(), shardShape(i), layout);
              const wantGi = batchSlice(expected.grad_input ?? [], shape, from, to);
              const giScale = batchSlice(Array.from(sc.gradInput), shape, from, to);
              const rGi = checkClose(`${where} grad_input`, gi, wantGi, (j) => rho * (giScale[j] as number));
              expect(rGi.failure).toBeNull();
              note(setup, 'grad_input', rGi.maxErr);
              if (!c.affine) {
                expect(g.gradWeight).toBeNull();
                expect(g.gradBias).toBeNull();
                continue;
              }
              if (!g.gradWeight || !g.gradBias) throw new Error(`${where}: no grad_weight/grad_bias`);
              live.push(g.gradWeight, g.gradBias);
              const rW = checkClose(
                `${where} grad_weight`,
                await g.gradWeight.read(),
                expected.grad_weight ?? [],
                (j) => rho * (sc.gradWeight[j] as number),
              );
              const rB = checkClose(
                `${where} grad_bias`,
                await g.gradBias.read(),
                expected.grad_bias ?? [],
                (j) => rho * (sc.gradBias[j] as number),
              );
              expect(rW.failure).toBeNull();
              expect(rB.failure).toBeNull();
              note(setup, 'grad_weight', rW.maxErr);
              note(setup, 'grad_bias', rB.maxErr);
            }
          }
        } finally {
          for (const t of live) t.destroy();
          for (const m of modules) m.destroy();
        }
        for (const b of new Set(shardBackends)) count(b);
      });
    }
  });
});

// ------------------------------------------------------------------ zero-copy records, errors

describe('zero-copy records and bad input on webgpu', () => {
  let ctx: BatchNormContext;
  beforeAll(async () => {
    ctx = await contextFor('webgpu');
  });
  afterAll(() => ctx.destroy());

  it('encodeMomentsPartial / encodeGradPartial write into a caller buffer at an offset, equal to the read-back partials', async () => {
    const device = ctx.device;
    if (!device) throw new Error('no device');
    const C = 5;
    const shape = [3, C, 6];
    const next = rng(9);
    const x = ctx.tensor(
      Float32Array.from({ length: 90 }, () => 100 + gaussian(next)),
      shape,
    );
    const dy = ctx.tensor(
      Float32Array.from({ length: 90 }, () => gaussian(next)),
      shape,
    );
    const bn = new SyncBatchNorm(ctx, C);
    const usage = GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST;
    const target = device.createBuffer({ label: 'test.sync.target', size: 1024, usage });
    const readback = device.createBuffer({
      label: 'test.sync.readback',
      size: 1024,
      usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST,
    });
    const momentsOffset = 272;
    const gradOffset = 604;
    try {
      const own = await bn.momentsPartial(x);
      const encoder = device.createCommandEncoder();
      bn.encodeMomentsPartial(encoder, x, target, momentsOffset);
      device.queue.submit([encoder.finish()]);
      const y = bn.forward(x, mergeMoments([own]));
      const ownGrad = await bn.gradPartial(dy);
      const e2 = device.createCommandEncoder();
      bn.encodeGradPartial(e2, dy, target, gradOffset);
      e2.copyBufferToBuffer(target, 0, readback, 0, 1024);
      device.queue.submit([e2.finish()]);
      await readback.mapAsync(GPUMapMode.READ);
      const bytes = readback.getMappedRange().slice(0);
      readback.unmap();
      const decoded = decodeMomentsRecords(new Uint8Array(bytes, momentsOffset, C * MOMENTS_RECORD_BYTES), C);
      expect(bits(decoded.mean)).toBe(bits(own.mean));
      expect(bits(decoded.m2)).toBe(bits(own.m2));
      expect(Array.from(decoded.count)).toEqual([18, 18, 18, 18, 18]);
      const g = new Float32Array(bytes, gradOffset, 2 * C);
      expect(Array.from(g.subarray(0, C))).toEqual(Array.from(ownGrad.sumDy));
      expect(Array.from(g.subarray(C))).toEqual(Array.from(ownGrad.sumDyXhat));
      y.destroy();
      count('webgpu');
    } finally {
      target.destroy();
      readback.destroy();
      x.destroy();
      dy.destroy();
      bn.destroy();
    }
  });

  it('a steady-state synchronized step (cumulative average) creates no GPU buffer and submits a fixed number of times', async () => {
    const C = 6;
    const shape = [4, C, 8];
    const next = rng(11);
    const bn = new SyncBatchNorm(ctx, C, { momentum: null });
    const step = async (): Promise<void> => {
      const x = ctx.tensor(
        Float32Array.from({ length: 192 }, () => gaussian(next)),
        shape,
      );
      const dy = ctx.tensor(
        Float32Array.from({ length: 192 }, () => gaussian(next)),
        shape,
      );
      const y = bn.forward(x, mergeMoments([await bn.momentsPartial(x)]));
      const g = bn.backward(dy, mergeGradSums([await bn.gradPartial(dy)]));
      for (const t of [x, dy, y, g.gradInput, g.gradWeight, g.gradBias]) t?.destroy();
    };
    try {
      await step();
      await step();
      await ctx.sync();
      const before = ctx.stats;
      const steps = 5;
      for (let i = 0; i < steps; i++) await step();
      await ctx.sync();
      const after = ctx.stats;
      expect(after.buffersCreated).toBe(before.buffersCreated);
      expect(after.liveBuffers).toBe(before.liveBuffers);
      // Per step: writeBuffer-free uploads of x and dy aside, moments (1 + readback 1), forward 1,
      // gradient sums (1 + readback 1), backward 1.
      expect(after.submits - before.submits).toBe(6 * steps);
      expect(bn.numBatchesTracked).toBe(7);
      count('webgpu');
    } finally {
      bn.destroy();
    }
  });

  it('rejects bad merged statistics, targets and call order before any work, leaving state unchanged', async () => {
    const C = 3;
    const x = ctx.tensor(new Float32Array(12).fill(1), [2, C, 2]);
    const bn = new SyncBatchNorm(ctx, C, { momentum: null });
    try {
      const before = await bn.stateDict();
      const good = await bn.momentsPartial(x);
      expect(() => bn.forward(x)).toThrow(ArgumentError);
      expect(() => bn.forward(x, { ...good, mean: new Float64Array(2) })).toThrow(ShapeError);
      expect(() => bn.forward(x, { count: Float64Array.of(1, 1, 1), mean: new Float64Array(3), m2: new Float64Array(3) })).toThrow(
        InsufficientValuesError,
      );
      expect(() => bn.forward(x, { count: Float64Array.of(3, 3, 3), mean: new Float64Array(3), m2: new Float64Array(3) })).toThrow(
        /smaller than this shard/,
      );
      await expect(bn.gradPartial(x)).rejects.toThrow(BackwardStateError);
      const encoder = ctx.device?.createCommandEncoder();
      if (!encoder) throw new Error('no device');
      const noStorage = ctx.device?.createBuffer({ size: 256, usage: GPUBufferUsage.COPY_SRC });
      if (!noStorage) throw new Error('no device');
      expect(() => bn.encodeMomentsPartial(encoder, x, noStorage)).toThrow(/STORAGE/);
      expect(() => bn.encodeMomentsPartial(encoder, x, noStorage, 8)).toThrow(/multiple of 16/);
      noStorage.destroy();
      expect(await bn.stateDict()).toEqual(before);
      expect(bn.numBatchesTracked).toBe(0);
      bn.eval();
      expect(() => bn.forward(x, good)).toThrow(/only used in training mode/);
      count('webgpu');
    } finally {
      x.destroy();
      bn.destroy();
    }
  });
});

it('has PyTorch available in CI', () => {
  if (process.env['CI']) expect(available, 'CI must install python3-torch for the SyncBatchNorm differential').toBe(true);
});
