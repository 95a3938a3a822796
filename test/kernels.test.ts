/**
 * Kernel-level suite (issue 13, "tests point to the stage"): each WGSL stage dispatched alone on
 * WebGPU (Dawn + SwiftShader) against the CPU oracle of the same step, so a failure names the
 * stage, not the whole forward or backward:
 *   stats.wgsl          per-lane partials (count, mean − K, M2, K) → merged on the host in float64
 *                       → cpuBatchStats' mean and biased variance;
 *   sync_moments        the Chan merge of those partials (common/chan-merge.wgsl) → cpuMoments;
 *   normalize.wgsl      evaluation (constants from running statistics) → cpuNormalize;
 *   backward_prepare + backward-elementwise   evaluation backward (dx = dy·invstd·w) → cpuBackward;
 *   fold.wgsl           → foldBatchNorm (float64).
 * Shapes cover both layouts, vec4 and scalar bindings (an element offset that breaks 16-byte
 * alignment), and several partial lanes per channel. Tolerances against the float64 oracle:
 * mean |err| ≤ 1e-5·(1 + |mean|) + 1e-5·std; variance and M2 relative 1e-4 (float32 partial sums of
 * up to a few thousand values); elementwise outputs 1e-5 + 1e-5·|ref| (a few float32 roundings).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cpuBackward } from '../src/batch-norm/cpu/cpu-backward.js';
import { cpuBatchStats, cpuNormalize, invstdOf } from '../src/batch-norm/cpu/cpu.js';
import { vec4Aligned } from '../src/batch-norm/kernels/dispatch-shape.js';
import { geometryOf } from '../src/batch-norm/geometry.js';
import { encodeStatsPass } from '../src/batch-norm/kernels/stats-pass.js';
import { STATS_PARTIAL_BYTES } from '../src/gpu/contracts.js';
import { bindTensor } from '../src/gpu/tensor-binding.js';
import { foldBatchNorm, foldBatchNormTensors } from '../src/fold/index.js';
import { BatchNorm2d, batchNorm, batchNormBackward, type BatchNormContext, type Layout, type Tensor } from '../src/index.js';
import { cpuMoments } from '../src/sync/sync-cpu.js';
import { SyncBatchNorm } from '../src/sync/index.js';
import { caseCounter, checkClose, contextFor, gaussian, rng } from './helpers/backends.js';

const count = caseCounter('kernels');

interface StageCase {
  readonly shape: readonly number[];
  readonly layout: Layout;
  /** Floats before the tensor in its buffer: 1 forces the scalar (non-vec4) kernels. */
  readonly offset: number;
}

const CASES: readonly StageCase[] = [
  { shape: [4, 8, 6, 5], layout: 'channels_first', offset: 0 },
  { shape: [4, 8, 6, 5], layout: 'channels_first', offset: 1 },
  { shape: [3, 8, 5, 7], layout: 'channels_last', offset: 0 },
  { shape: [3, 6, 5, 7], layout: 'channels_last', offset: 1 },
  { shape: [64, 12], layout: 'channels_first', offset: 0 },
  { shape: [2, 3, 40, 40], layout: 'channels_first', offset: 0 },
];

function values(n: number, seed: number, mean = 0, std = 1): Float32Array<ArrayBuffer> {
  const next = rng(seed);
  return Float32Array.from({ length: n }, () => mean + std * gaussian(next));
}

const label = (c: StageCase): string => `[${c.shape.join(',')}] ${c.layout} +${c.offset}`;
const sizeOf = (shape: readonly number[]): number => shape.reduce((a, b) => a * b, 1);

describe('each WGSL stage alone vs the CPU oracle (webgpu)', () => {
  let ctx: BatchNormContext;
  let device: GPUDevice;
  beforeAll(async () => {
    ctx = await contextFor('webgpu');
    if (!ctx.device) throw new Error('setup');
    device = ctx.device;
  });
  afterAll(() => ctx?.destroy());

  /** `data` in a buffer of its own at float offset `offset`, as a tensor of this context. */
  const placed = (data: Float32Array<ArrayBuffer>, c: StageCase): Tensor => {
    const buffer = device.createBuffer({ size: Math.ceil(((data.length + c.offset) * 4) / 16) * 16, usage: 0x80 | 0x04 | 0x08 });
    device.queue.writeBuffer(buffer, c.offset * 4, data);
    return ctx.tensorFromBuffer(buffer, [...c.shape], { layout: c.layout, byteOffset: c.offset * 4 });
  };

  it.each(CASES)('stats.wgsl partials merge to cpuBatchStats: %s', async (c) => {
    const gpu = ctx.gpu;
    if (!gpu) throw new Error('setup');
    const data = values(sizeOf(c.shape), 3, 50, 2);
    const x = placed(data, c);
    const g = geometryOf(c.shape, c.layout);
    const xb = bindTensor(device, x);
    const width = vec4Aligned(g, xb.base) ? 4 : 1;
    let stats: { partials: GPUBufferBinding; lanes: number } | null = null;
    gpu.submit('test.stats', (encoder) => {
      const pass = encoder.beginComputePass();
      stats = encodeStatsPass(gpu, pass, g, xb, width);
      pass.end();
    });
    const s = stats as unknown as { partials: GPUBufferBinding; lanes: number };
    const raw = await gpu.readFloats(s.partials.buffer, 0, g.c * s.lanes * STATS_PARTIAL_BYTES);
    const bits = new Uint32Array(raw.buffer, raw.byteOffset, raw.length);
    const oracle = cpuBatchStats(data, g);
    for (let ch = 0; ch < g.c; ch++) {
      // Chan merge in float64 of the lanes' (count, mean − K, M2), each around its K.
      let n = 0;
      let mean = 0;
      let m2 = 0;
      for (let l = 0; l < s.lanes; l++) {
        const at = 4 * (ch * s.lanes + l);
        const nb = bits[at] as number;
        if (nb === 0) continue;
        const mb = (raw[at + 3] as number) + (raw[at + 1] as number);
        const total = n + nb;
        const d = mb - mean;
        mean += (d * nb) / total;
        m2 += (raw[at + 2] as number) + (d * d * n * nb) / total;
        n = total;
      }
      expect(n, `${label(c)} channel ${ch} count`).toBe(oracle.count);
      const ref = oracle.mean[ch] as number;
      const variance = oracle.biasedVar[ch] as number;
      expect(Math.abs(mean - ref), `${label(c)} channel ${ch} mean`).toBeLessThanOrEqual(
        1e-5 * (1 + Math.abs(ref)) + 1e-5 * Math.sqrt(variance),
      );
      expect(Math.abs(m2 / n - variance), `${label(c)} channel ${ch} variance`).toBeLessThanOrEqual(1e-4 * variance);
    }
    count('webgpu');
  });

  it.each(CASES)('sync_moments (the shared Chan merge) matches cpuMoments: %s', async (c) => {
    const data = values(sizeOf(c.shape), 5, -3, 0.5);
    const x = placed(data, c);
    const g = geometryOf(c.shape, c.layout);
    const got = await new SyncBatchNorm(ctx, g.c).momentsPartial(x);
    const ref = cpuMoments(data, g);
    expect(Array.from(got.count)).toEqual(Array.from(ref.count));
    for (let ch = 0; ch < g.c; ch++) {
      const m = ref.mean[ch] as number;
      const m2 = ref.m2[ch] as number;
      expect(Math.abs((got.mean[ch] as number) - m)).toBeLessThanOrEqual(1e-5 * (1 + Math.abs(m)));
      expect(Math.abs((got.m2[ch] as number) - m2)).toBeLessThanOrEqual(1e-4 * m2);
    }
    count('webgpu');
  });

  it.each(CASES)('normalize.wgsl in evaluation matches cpuNormalize: %s', async (c) => {
    const g = geometryOf(c.shape, c.layout);
    const data = values(sizeOf(c.shape), 7, 1, 3);
    const rm = values(g.c, 8, 1, 1);
    const rv = Float32Array.from(values(g.c, 9), (v) => 0.5 + v * v);
    const w = values(g.c, 10, 1, 0.5);
    const b = values(g.c, 11);
    const t = (v: Float32Array): Tensor => ctx.tensor(v, [g.c]);
    const y = await batchNorm(ctx, placed(data, c), { runningMean: t(rm), runningVar: t(rv), weight: t(w), bias: t(b), eps: 1e-3 }).read();
    const ref = new Float32Array(data.length);
    cpuNormalize(data, ref, g, Float64Array.from(rm), invstdOf(rv, 1e-3), w, b);
    expect(checkClose(`${label(c)} y`, y, ref, (i) => 1e-5 + 1e-5 * Math.abs(ref[i] as number)).failure).toBeNull();
    count('webgpu');
  });

  it.each(CASES)('backward_prepare + backward-elementwise (evaluation backward) match cpuBackward: %s', async (c) => {
    const g = geometryOf(c.shape, c.layout);
    const data = values(sizeOf(c.shape), 12);
    const dy = values(sizeOf(c.shape), 13);
    const rm = values(g.c, 14);
    const rv = Float32Array.from(values(g.c, 15), (v) => 0.25 + v * v);
    const w = values(g.c, 16, 1, 0.5);
    const t = (v: Float32Array): Tensor => ctx.tensor(v, [g.c]);
    const result = batchNormBackward(
      ctx,
      {
        input: placed(data, c),
        gradOutput: placed(dy, c),
        weight: t(w),
        runningMean: t(rm),
        runningVar: t(rv),
        training: false,
        eps: 1e-5,
      },
      { outputMask: [true, false, false] },
    );
    const dx = await (result.gradInput as Tensor).read();
    const ref = new Float32Array(data.length);
    cpuBackward({ x: data, dy, mean: rm, invstd: invstdOf(rv, 1e-5), weight: w, useBatchStats: false }, g, {
      gradInput: ref,
      gradWeight: null,
      gradBias: null,
    });
    expect(checkClose(`${label(c)} dx`, dx, ref, (i) => 1e-5 + 1e-5 * Math.abs(ref[i] as number)).failure).toBeNull();
    count('webgpu');
  });

  it('fold.wgsl matches foldBatchNorm (float64)', async () => {
    const bn = new BatchNorm2d(ctx, 4);
    const state = {
      weight: values(4, 20, 1),
      bias: values(4, 21),
      running_mean: values(4, 22),
      running_var: Float32Array.from(values(4, 23), (v) => 0.1 + v * v),
    };
    bn.loadStateDict({ ...state, num_batches_tracked: 0 });
    const weight = values(4 * 3 * 3 * 3, 24);
    const bias = values(4, 25);
    const folded = foldBatchNormTensors(bn.eval(), { weight: ctx.tensor(weight, [4, 3, 3, 3]), bias: ctx.tensor(bias, [4]) });
    const ref = foldBatchNorm({ weight, weightShape: [4, 3, 3, 3], bias }, state, { eps: bn.eps });
    const gw = await folded.weight.read();
    const gb = await folded.bias.read();
    expect(checkClose('folded weight', gw, ref.weight, (i) => 1e-6 + 1e-6 * Math.abs(ref.weight[i] as number)).failure).toBeNull();
    expect(checkClose('folded bias', gb, ref.bias, (i) => 1e-6 + 1e-6 * Math.abs(ref.bias[i] as number)).failure).toBeNull();
    count('webgpu');
  });
});
