/**
 * Folding BN (eval) into conv/linear against torch.nn.utils.fusion.fuse_conv_bn_eval /
 * fuse_linear_bn_eval (run on float64 copies by test/torch/generate_model_files.py → fold.json):
 * 1-D/2-D/3-D convs, bias=False, groups=2, depthwise (multiplier 1 and 2), linear, in PyTorch's
 * channels-first layout and in Keras/TF.js channels-last (HWIO, Dense in×out, depthwise k×k×C×M),
 * with the CPU function and with tensors on both backends.
 *
 * Tolerances (per quantity, against the float64 reference r):
 * - CPU (float64 arithmetic, one rounding): |Δ| ≤ 2^-24·|r|, half a float32 ULP (+1e-30 for r = 0).
 * - WebGPU (float32 arithmetic; WGSL sqrt and division are within 2.5 ULP): weight |Δ| ≤ 2^-20·|r|,
 *   bias |Δ| ≤ 2^-20·(|(b − mean)·w·invstd| + |bn_bias|), i.e. 8 ULP of the largest term.
 */
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ArgumentError, BatchNorm1d, BatchNorm2d, ShapeError, type BatchNormContext } from '../src/index.js';
import { encodeFoldBatchNorm, foldBatchNorm, foldBatchNormTensors } from '../src/fold/index.js';
import { BACKENDS, caseCounter, checkClose, contextFor } from './helpers/backends.js';

interface FoldCase {
  name: string;
  kind: 'conv' | 'linear';
  groups: number;
  weight_shape: number[];
  weight: number[];
  bias: number[] | null;
  bn: { weight: number[]; bias: number[]; running_mean: number[]; running_var: number[]; eps: number };
  folded_weight: number[];
  folded_bias: number[];
  torch_f32_weight: number[];
  torch_f32_bias: number[];
}
const fixture = JSON.parse(readFileSync(new URL('./fixtures/models/fold.json', import.meta.url), 'utf8')) as { cases: FoldCase[] };
const cases = fixture.cases;
const count = caseCounter('fold');

/** Moves the output axis (0) of a PyTorch weight to the end, the rest as Keras orders them. */
function toChannelsLast(values: readonly number[], shape: readonly number[]): { values: number[]; shape: number[] } {
  const rest = shape.slice(1);
  // PyTorch [O, I, k...] → Keras [k..., I, O]; Linear [out, in] → Dense [in, out].
  const perm = rest.length === 1 ? [1, 0] : [...rest.slice(1).map((_, i) => i + 2), 1, 0];
  const outShape = perm.map((p) => shape[p] ?? 0);
  const strides = shape.map((_, d) => shape.slice(d + 1).reduce((a, b) => a * b, 1));
  const out: number[] = new Array<number>(values.length);
  const idx = new Array<number>(shape.length).fill(0);
  for (let i = 0; i < values.length; i++) {
    let rem = i;
    for (let d = outShape.length - 1; d >= 0; d--) {
      const size = outShape[d] ?? 1;
      idx[perm[d] ?? 0] = rem % size;
      rem = Math.floor(rem / size);
    }
    out[i] = values[idx.reduce((a, v, d) => a + v * (strides[d] ?? 0), 0)] as number;
  }
  return { values: out, shape: outShape };
}

const cpuTol = (ref: readonly number[]) => (i: number) => 2 ** -24 * Math.abs(ref[i] ?? 0) + 1e-30;

function biasTerms(c: FoldCase): number[] {
  return c.bn.running_mean.map((m, i) => {
    const invstd = 1 / Math.sqrt((c.bn.running_var[i] ?? 1) + c.bn.eps);
    return Math.abs(((c.bias?.[i] ?? 0) - m) * invstd * (c.bn.weight[i] ?? 1)) + Math.abs(c.bn.bias[i] ?? 0);
  });
}

describe('foldBatchNorm (CPU function) vs torch.nn.utils.fusion', () => {
  let maxRel = 0;
  let torchMaxRel = 0;
  afterAll(() =>
    console.log(`[fold] CPU max |Δ|/|ref| ${maxRel.toExponential(2)}; PyTorch float32 fusion ${torchMaxRel.toExponential(2)}`),
  );

  it.each(cases.map((c) => [c.name, c] as const))('%s, channels_first', (_name, c) => {
    const folded = foldBatchNorm({ weight: Float32Array.from(c.weight), weightShape: c.weight_shape, bias: c.bias }, c.bn, {
      eps: c.bn.eps,
    });
    const w = checkClose('weight', folded.weight, c.folded_weight, cpuTol(c.folded_weight));
    const b = checkClose('bias', folded.bias, c.folded_bias, cpuTol(c.folded_bias));
    expect(w.failure).toBeNull();
    expect(b.failure).toBeNull();
    c.folded_weight.forEach((r, i) => {
      if (r !== 0) {
        maxRel = Math.max(maxRel, Math.abs((folded.weight[i] ?? 0) - r) / Math.abs(r));
        torchMaxRel = Math.max(torchMaxRel, Math.abs((c.torch_f32_weight[i] ?? 0) - r) / Math.abs(r));
      }
    });
  });

  it.each(cases.map((c) => [c.name, c] as const))('%s, channels_last (Keras/TF.js)', (_name, c) => {
    const last = toChannelsLast(c.weight, c.weight_shape);
    const ref = toChannelsLast(c.folded_weight, c.weight_shape);
    // Keras DepthwiseConv2D stores k×k×C×M: the same memory as HWIO [k, k, 1, C·M].
    const shape =
      c.groups > 1 && c.weight_shape[1] === 1 ? [...last.shape.slice(0, -2), c.groups, (c.weight_shape[0] ?? 0) / c.groups] : last.shape;
    const folded = foldBatchNorm({ weight: last.values, weightShape: shape, bias: c.bias }, c.bn, {
      eps: c.bn.eps,
      layout: 'channels_last',
    });
    expect(checkClose('weight', folded.weight, ref.values, cpuTol(ref.values)).failure).toBeNull();
    expect(checkClose('bias', folded.bias, c.folded_bias, cpuTol(c.folded_bias)).failure).toBeNull();
  });

  it('affine=False batch norms fold with weight 1 and bias 0', () => {
    const folded = foldBatchNorm({ weight: [1, 2, 3, 4], weightShape: [2, 2] }, { running_mean: [1, -1], running_var: [3, 0] }, { eps: 1 });
    expect(Array.from(folded.weight)).toEqual([0.5, 1, 3, 4]);
    expect(Array.from(folded.bias)).toEqual([-0.5, 1]);
  });

  it("takes a module's stateDict() as it is (issue 15 §1), and refuses one without running statistics", async () => {
    const cpu = await contextFor('cpu');
    try {
      const bn = new BatchNorm1d(cpu, 2);
      bn.loadStateDict({ weight: [2, 1], bias: [0, 1], running_mean: [1, -1], running_var: [3, 0], num_batches_tracked: 4 });
      const state = await bn.stateDict();
      const folded = foldBatchNorm({ weight: [1, 2, 3, 4], weightShape: [2, 2] }, state, { eps: 1 });
      expect(Array.from(folded.weight)).toEqual([1, 2, 3, 4]);
      expect(Array.from(folded.bias)).toEqual([-1, 2]);
      const untracked = await new BatchNorm1d(cpu, 2, { trackRunningStats: false }).stateDict();
      expect(() => foldBatchNorm({ weight: [1, 2, 3, 4], weightShape: [2, 2] }, untracked)).toThrow(ArgumentError);
    } finally {
      cpu.destroy();
    }
  });

  it('rejects mismatched shapes and bad options before computing anything', () => {
    const bn = { running_mean: [0, 0, 0], running_var: [1, 1, 1] };
    expect(() => foldBatchNorm({ weight: new Float32Array(24), weightShape: [4, 2, 3] }, bn)).toThrow(ShapeError);
    expect(() => foldBatchNorm({ weight: new Float32Array(24), weightShape: [4, 2, 3] }, bn)).toThrow(/3 channels.*first axis \(4\)/);
    expect(() => foldBatchNorm({ weight: new Float32Array(24), weightShape: [2, 4, 3] }, bn, { layout: 'channels_last' })).not.toThrow();
    expect(() => foldBatchNorm({ weight: new Float32Array(24), weightShape: [3, 8] }, bn, { layout: 'channels_last' })).toThrow(ShapeError);
    expect(() => foldBatchNorm({ weight: new Float32Array(23), weightShape: [3, 8] }, bn)).toThrow(/23 values/);
    expect(() => foldBatchNorm({ weight: new Float32Array(24), weightShape: [3, 8], bias: [1, 2] }, bn)).toThrow(
      /bias has 2 values, expected 3/,
    );
    expect(() => foldBatchNorm({ weight: new Float32Array(24), weightShape: [3, 8] }, bn, { eps: 0 })).toThrow(ArgumentError);
    expect(() =>
      foldBatchNorm({ weight: new Float32Array(24), weightShape: [3, 8] }, { running_mean: [0, 0, 0], running_var: [1] }),
    ).toThrow(ShapeError);
  });
});

describe.each(BACKENDS)('foldBatchNormTensors on %s', (backend) => {
  let ctx: BatchNormContext;
  let maxWeightErr = 0;
  beforeAll(async () => {
    ctx = await contextFor(backend);
  });
  afterAll(() => {
    console.log(`[fold] ${backend}: max weight |Δ|/|ref| ${maxWeightErr.toExponential(2)}`);
    ctx.destroy();
  });

  const bnFor = (c: FoldCase): BatchNorm1d => {
    // The module class only decides accepted input ranks; folding reads its vectors and eps.
    const bn = new BatchNorm1d(ctx, c.bn.running_mean.length, { eps: c.bn.eps }).eval();
    bn.loadStateDict({
      weight: c.bn.weight,
      bias: c.bn.bias,
      running_mean: c.bn.running_mean,
      running_var: c.bn.running_var,
      num_batches_tracked: 1,
    });
    return bn;
  };

  it.each(cases.map((c) => [c.name, c] as const))('%s, both layouts', async (_name, c) => {
    const bn = bnFor(c);
    const terms = biasTerms(c);
    for (const layout of ['channels_first', 'channels_last'] as const) {
      const w = layout === 'channels_first' ? { values: c.weight, shape: c.weight_shape } : toChannelsLast(c.weight, c.weight_shape);
      const ref = layout === 'channels_first' ? c.folded_weight : toChannelsLast(c.folded_weight, c.weight_shape).values;
      const weight = ctx.tensor(Float32Array.from(w.values), w.shape);
      const bias = c.bias ? ctx.tensor(Float32Array.from(c.bias), [c.bias.length]) : null;
      const folded = foldBatchNormTensors(bn, { weight, bias }, { layout });
      const fw = await folded.weight.read();
      const fb = await folded.bias.read();
      const wTol = backend === 'cpu' ? cpuTol(ref) : (i: number) => 2 ** -20 * Math.abs(ref[i] ?? 0);
      const bTol = backend === 'cpu' ? cpuTol(c.folded_bias) : (i: number) => 2 ** -20 * (terms[i] ?? 0);
      const rw = checkClose(`${layout} weight`, fw, ref, wTol);
      const rb = checkClose(`${layout} bias`, fb, c.folded_bias, bTol);
      expect(rw.failure).toBeNull();
      expect(rb.failure).toBeNull();
      ref.forEach((r, i) => {
        if (r !== 0) maxWeightErr = Math.max(maxWeightErr, Math.abs((fw[i] ?? 0) - r) / Math.abs(r));
      });
      for (const t of [weight, bias, folded.weight, folded.bias]) t?.destroy();
      count(backend);
    }
    bn.destroy();
  });

  it("folds with the eps the forward uses: a convention's eps floor (tf-keras2-fused 1.001e-5) included", async () => {
    // tf.nn.fused_batch_norm raises eps 1e-8 to 1.001e-5, so with running_var 0 the forward scales
    // by 1/sqrt(1.001e-5) ≈ 316, not 1/sqrt(1e-8) = 10000; the folded layer must do the same.
    const bn = new BatchNorm1d(ctx, 2, { convention: 'tf-keras2-fused', eps: 1e-8 }).eval();
    bn.loadStateDict({ gamma: [1, 2], beta: [0.5, -1], moving_mean: [0.25, -3], moving_variance: [0, 4] });
    expect(bn.eps).toBe(1e-8);
    // Identity linear layer: the folded weight's diagonal is the forward's per-channel scale, the
    // folded bias its output at x = 0.
    const weight = ctx.tensor(Float32Array.from([1, 0, 0, 1]), [2, 2]);
    const folded = foldBatchNormTensors(bn, { weight });
    const x = ctx.tensor(Float32Array.from([1, 1, 0, 0]), [2, 2]);
    const y = await bn.forward(x).read();
    const fw = await folded.weight.read();
    const fb = await folded.bias.read();
    const tol = (ref: number): number => 2 ** -18 * Math.abs(ref) + 1e-6;
    for (let c = 0; c < 2; c++) {
      const forwardScale = (y[c] ?? 0) - (y[2 + c] ?? 0);
      expect(Math.abs((fw[c * 3] ?? 0) - forwardScale), `channel ${c} weight ${fw[c * 3]} vs ${forwardScale}`).toBeLessThan(
        tol(forwardScale),
      );
      expect(Math.abs((fb[c] ?? 0) - (y[2 + c] ?? 0))).toBeLessThan(tol(y[2 + c] ?? 0));
    }
    expect(fw[0]).toBeCloseTo(1 / Math.sqrt(1.001e-5), 2);
    expect(bn.kernelEps).toBe(1.001e-5);
    for (const t of [weight, x, folded.weight, folded.bias]) t.destroy();
    bn.destroy();
    count(backend);
  });

  it('validates before any work: channel mismatch, bias shape, no running stats, foreign tensors', async () => {
    const bn = new BatchNorm2d(ctx, 3).eval();
    expect(() => foldBatchNormTensors(bn, { weight: ctx.tensor(new Float32Array(8), [4, 2]) })).toThrow(ShapeError);
    expect(() =>
      foldBatchNormTensors(bn, { weight: ctx.tensor(new Float32Array(6), [3, 2]), bias: ctx.tensor(new Float32Array(2), [2]) }),
    ).toThrow(/layer.bias has shape \[2\], expected \[3\]/);
    const plain = new BatchNorm2d(ctx, 3, { trackRunningStats: false });
    expect(() => foldBatchNormTensors(plain, { weight: ctx.tensor(new Float32Array(6), [3, 2]) })).toThrow(/trackRunningStats=false/);
    const other = await contextFor(backend);
    expect(() => foldBatchNormTensors(bn, { weight: other.tensor(new Float32Array(6), [3, 2]) })).toThrow(/another context/);
    other.destroy();
    plain.destroy();
    bn.destroy();
    count(backend);
  });
});

describe('encodeFoldBatchNorm on webgpu', () => {
  const backend = 'webgpu' as const;
  let ctx: BatchNormContext;
  beforeAll(async () => {
    ctx = await contextFor(backend);
  });
  afterAll(() => ctx.destroy());

  it('refuses the CPU backend', async () => {
    const cpu = await contextFor('cpu');
    const bn = new BatchNorm1d(cpu, 2).eval();
    const weight = cpu.tensor(new Float32Array(4), [2, 2]);
    const out = { weight: cpu.tensor(new Float32Array(4), [2, 2]), bias: cpu.tensor(new Float32Array(2), [2]) };
    expect(() => encodeFoldBatchNorm({} as GPUCommandEncoder, bn, { weight }, out)).toThrow(/needs the 'webgpu' backend/);
    cpu.destroy();
    count('cpu');
  });

  it("records into the caller's encoder on caller buffers at offsets (zero-copy), refusing aliasing outputs", async () => {
    const c = cases.find((x) => x.name === 'conv2d_groups2');
    if (!c) throw new Error('fixture case missing');
    const device = ctx.device;
    if (!device) throw new Error('no device');
    const bn = new BatchNorm1d(ctx, c.bn.running_mean.length, { eps: c.bn.eps }).eval();
    bn.loadStateDict({
      weight: c.bn.weight,
      bias: c.bn.bias,
      running_mean: c.bn.running_mean,
      running_var: c.bn.running_var,
      num_batches_tracked: 1,
    });
    const usage = GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST;
    const align = device.limits.minStorageBufferOffsetAlignment;
    const params = device.createBuffer({ label: 'test.fold.params', size: 4 * align + 4096, usage });
    const outputs = device.createBuffer({ label: 'test.fold.outputs', size: 4 * align + 4096, usage });
    device.queue.writeBuffer(params, align + 4, Float32Array.from(c.weight));
    device.queue.writeBuffer(params, 3 * align, Float32Array.from(c.bias ?? []));
    const weight = ctx.tensorFromBuffer(params, c.weight_shape, { byteOffset: align + 4 });
    const bias = ctx.tensorFromBuffer(params, [c.bias?.length ?? 0], { byteOffset: 3 * align });
    const out = {
      weight: ctx.tensorFromBuffer(outputs, c.weight_shape, { byteOffset: 8 }),
      bias: ctx.tensorFromBuffer(outputs, [c.bias?.length ?? 0], { byteOffset: 2 * align + 12 }),
    };
    const submitsBefore = ctx.stats.submits;
    const encoder = device.createCommandEncoder({ label: 'test.fold.encoder' });
    encodeFoldBatchNorm(encoder, bn, { weight, bias }, out);
    expect(ctx.stats.submits).toBe(submitsBefore);
    device.queue.submit([encoder.finish()]);
    // Steady state: the same fold again creates no buffer (pipeline, uniform and bind group are cached).
    const created = ctx.stats.buffersCreated;
    for (let k = 0; k < 3; k++) {
      const again = device.createCommandEncoder({ label: 'test.fold.again' });
      encodeFoldBatchNorm(again, bn, { weight, bias }, out);
      device.queue.submit([again.finish()]);
    }
    expect(ctx.stats.buffersCreated).toBe(created);
    const fw = await out.weight.read();
    const fb = await out.bias.read();
    expect(checkClose('weight', fw, c.folded_weight, (i) => 2 ** -20 * Math.abs(c.folded_weight[i] ?? 0)).failure).toBeNull();
    const terms = biasTerms(c);
    expect(checkClose('bias', fb, c.folded_bias, (i) => 2 ** -20 * (terms[i] ?? 0)).failure).toBeNull();
    const alias = { weight: ctx.tensorFromBuffer(params, c.weight_shape, { byteOffset: 2048 }), bias: out.bias };
    expect(() => encodeFoldBatchNorm(device.createCommandEncoder(), bn, { weight, bias }, alias)).toThrow(
      /out.weight .*shares memory with layer.weight/,
    );
    const overlap = { weight: out.weight, bias: ctx.tensorFromBuffer(outputs, [c.bias?.length ?? 0], { byteOffset: 16 }) };
    expect(() => encodeFoldBatchNorm(device.createCommandEncoder(), bn, { weight, bias }, overlap)).toThrow(/overlap/);
    await ctx.sync();
    bn.destroy();
    params.destroy();
    outputs.destroy();
    count(backend);
  });
});
