/**
 * What test/readme-blocks.test.ts wraps around each README block, by the id of its
 * `<!-- readme-test: id -->` marker: the inputs the block names as the user's own (the prelude,
 * hidden), the checks on what it computed (the epilogue, hidden, with the block's top-level names
 * in scope), the files it opens and the backends it runs on. Both parts are TypeScript and are
 * type-checked with the block. The header of readme-blocks.ts provides `__bn` (the package root),
 * `__io` and `__sync` (its /io and /sync entries), `__fs`, `__assert`, `__backend` and the float64 helpers below.
 */
import type { BlockSpec } from './readme-blocks.js';

const BOTH = ['webgpu', 'cpu'] as const;
const PT_FIXTURE = 'test/fixtures/models/state_f16.pt';

/** Shared by every block's prelude: float64 references and a per-element check. */
export const HELPERS = `
/** Training-mode batch norm of channels-first (N, C, ...) values in float64: biased variance for y. */
function __reference(v: ArrayLike<number>, shape: readonly number[], eps = 1e-5) {
  const n = shape[0] ?? 1;
  const c = shape[1] ?? 1;
  const s = v.length / (n * c);
  const mean = new Float64Array(c);
  const biased = new Float64Array(c);
  const unbiased = new Float64Array(c);
  const y = new Float64Array(v.length);
  for (let ch = 0; ch < c; ch++) {
    let sum = 0;
    for (let i = 0; i < n; i++) for (let k = 0; k < s; k++) sum += v[(i * c + ch) * s + k] ?? 0;
    const m = sum / (n * s);
    let sq = 0;
    for (let i = 0; i < n; i++) for (let k = 0; k < s; k++) sq += ((v[(i * c + ch) * s + k] ?? 0) - m) ** 2;
    mean[ch] = m;
    biased[ch] = sq / (n * s);
    unbiased[ch] = sq / (n * s - 1);
    const invstd = 1 / Math.sqrt(sq / (n * s) + eps);
    for (let i = 0; i < n; i++) for (let k = 0; k < s; k++) { const j = (i * c + ch) * s + k; y[j] = ((v[j] ?? 0) - m) * invstd; }
  }
  return { y, mean, biased, unbiased };
}
/** Every |actual − expected| ≤ abs + rel·|expected|; NaN never passes. */
function __expectClose(what: string, actual: ArrayLike<number>, expected: ArrayLike<number>, abs: number, rel: number): void {
  __assert.equal(actual.length, expected.length, what + ': length');
  for (let i = 0; i < expected.length; i++) {
    const a = actual[i] ?? Number.NaN;
    const e = expected[i] ?? Number.NaN;
    if (!(Math.abs(a - e) <= abs + rel * Math.abs(e))) __assert.fail(what + '[' + i + ']: got ' + a + ', expected ' + e);
  }
}
void __reference; void __expectClose;
`;

export const BLOCK_SPECS: Readonly<Record<string, BlockSpec>> = {
  inference: {
    backends: BOTH,
    prelude: `
const checkpoint = {
  weight: Float32Array.from({ length: 64 }, (_, c) => 0.5 + c / 64),
  bias: Float32Array.from({ length: 64 }, (_, c) => c / 32 - 1),
  running_mean: Float32Array.from({ length: 64 }, (_, c) => 100 + c),
  running_var: Float32Array.from({ length: 64 }, (_, c) => 1 + c / 8),
  num_batches_tracked: 7,
};
const pixels = Uint8ClampedArray.from({ length: 64 * 56 * 56 }, (_, i) => (i * 37) % 256);
`,
    epilogue: `
__assert.equal(ctx.backend, __backend);
const __ref = Float64Array.from(pixels, (p, i) => {
  const c = i % 64; // channels-last memory order
  return ((p - (checkpoint.running_mean[c] ?? 0)) / Math.sqrt((checkpoint.running_var[c] ?? 0) + 1e-5)) * (checkpoint.weight[c] ?? 0) + (checkpoint.bias[c] ?? 0);
});
__expectClose('inference output', out, __ref, 1e-5, 1e-5);
`,
  },

  'zero-copy': {
    backends: ['webgpu'],
    webgpuOnly:
      'the block is about sharing your own GPUDevice, GPUBuffers (tensorFromBuffer) and GPUCommandEncoder (encodeForward) with the library; a CPU context has none of them',
    prelude: '',
    epilogue: `
__assert.equal(ctx.stats.submits, 0, 'the library submitted nothing of its own');
const __x = await x.read();
const __y = await y.read();
__expectClose('zero-copy output (in outputBuffer)', __y, __reference(__x, [N, C, H, W]).y, 1e-5, 1e-5);
`,
  },

  training: {
    backends: BOTH,
    prelude: `
// Your data: STEPS batches of 64·128 values. Counting the live GPU buffers at the start of each
// step (and once after the last) is the leak check: every step must end where it started.
const __steps = 30;
const __live: number[] = [];
const __kept: number[] = [];
const __created: number[] = [];
function __count(): void {
  __live.push(ctx.stats.liveBuffers);
  __kept.push(ctx.stats.keptBuffers);
  __created.push(ctx.stats.buffersCreated);
}
function* __batches(): Generator<Float32Array> {
  for (let s = 0; s < __steps; s++) {
    __count();
    yield Float32Array.from({ length: 64 * 128 }, (_, i) => Math.sin(i * 0.37 + s) * 3 + (i % 128) / 16);
  }
  __count();
}
const batches = __batches();
/** Your loss: L = ½·Σ(y − 0.5)², so dL/dy = y − 0.5. */
async function lossGrad(y: __bn.Tensor): Promise<__bn.Tensor> {
  const v = await y.read();
  return ctx.tensor(v.map((a) => a - 0.5), y.shape);
}
`,
    epilogue: `
__assert.equal(__live.length, __steps + 1);
if (__backend === 'webgpu') __assert.ok((__live[0] ?? 0) > 0, 'live buffers are counted on WebGPU');
__assert.deepEqual(__live, __live.map(() => __live[0]), 'live GPU buffers at the start of each step: ' + __live.join(' '));
__assert.deepEqual(__kept, __kept.map(() => 0), 'no buffer kept for caller encoders');
__assert.equal(sd.num_batches_tracked, __steps);
// dL/dbias = Σ_batch(y − 0.5) = 64·(bias − 0.5) (x̂ sums to 0), so bias_k = 0.5·(1 − (1 − 0.01·64)^k).
__expectClose('bias after SGD', sd['bias'] ?? [], new Array<number>(128).fill(0.5 * (1 - 0.36 ** __steps)), 1e-5, 1e-4);
// No allocation in steady state: after two warm-up steps (pipelines, uniforms, staging) nothing new.
const __steady = __created.slice(2);
__assert.deepEqual(__steady, __steady.map(() => __created[2]), 'GPU buffers created by the start of each step: ' + __created.join(' '));
console.log('[readme] training on ' + __backend + ': ' + __steps + ' steps, live GPU buffers ' + (__live[0] ?? 0) + ' at every step, ' +
  'buffers created ' + (__created[2] ?? 0) + ' by step 3 and ' + ((__created[__steps] ?? 0) - (__created[2] ?? 0)) + ' after');
`,
  },

  functional: {
    backends: BOTH,
    prelude: '',
    epilogue: `
const __ref = __reference(await x.read(), x.shape);
__expectClose('functional output', await y.read(), __ref.y, 1e-5, 1e-5);
__expectClose('running_mean', await runningMean.read(), Array.from(__ref.mean, (m) => 0.1 * m), 1e-6, 2e-6);
__expectClose('running_var', await runningVar.read(), Array.from(__ref.unbiased, (v) => 0.9 + 0.1 * v), 1e-6, 2e-6);
`,
  },

  epilogue: {
    backends: BOTH,
    prelude: `
const ctx = await __bn.createContext();
const { batchNorm } = __bn;
const __shape = [4, 3, 5, 5];
const __values = (seed: number) => Float32Array.from({ length: 4 * 3 * 5 * 5 }, (_, i) => Math.sin(i * 1.7 + seed) * 2);
const bn = new __bn.BatchNorm2d(ctx, 3);
const x = ctx.tensor(__values(1), __shape);
const identity = ctx.tensor(__values(2), __shape);
const gy = ctx.tensor(__values(3), __shape);
const slopes = ctx.tensor([0.25, -0.1, 0.5], [3]);
const opts = { runningMean: ctx.tensor([0, 0, 0], [3]), runningVar: ctx.tensor([1, 1, 1], [3]), training: true };
`,
    epilogue: `
const __t = __reference(await x.read(), __shape).y;
const __id = await identity.read();
const __relu = Array.from(__t, (v, i) => Math.max(0, v + (__id[i] ?? 0)));
__expectClose('relu(bn(x) + identity)', await y.read(), __relu, 2e-5, 1e-5);
__assert.ok(gradResidual && gradPreluWeight, 'gradResidual and gradPreluWeight returned');
__assert.deepEqual(gradPreluWeight.shape, [3]);
// On WebGPU the encoder path rewrote y and the gradients: y is the same forward again.
__expectClose('y after the encoder path', await y.read(), __relu, 2e-5, 1e-5);
for (const t of [gradInput, gradWeight, gradBias, gradResidual, gradPreluWeight]) __assert.ok(t && (await t.read()).every(Number.isFinite));
`,
  },

  'sync-batch-norm': {
    backends: BOTH,
    prelude: `
const ctx = await __bn.createContext();
const __shape = [4, 64, 3, 3];
const __data = (f: (i: number) => number) => Float32Array.from({ length: 4 * 64 * 9 }, (_, i) => f(i));
const x = ctx.tensor(__data((i) => Math.cos(i * 0.91) * 4 + (i % 7)), __shape);
const gy = ctx.tensor(__data((i) => Math.sin(i * 0.53)), __shape);
// Your transport, here of world size 2: a peer shard (its own SyncBatchNorm, other data) runs the
// same protocol inside allGather, and its array comes first in the second round.
const __peerX = ctx.tensor(__data((i) => Math.sin(i * 0.29) * 3 - 2), __shape);
const __peerGy = ctx.tensor(__data((i) => Math.cos(i * 0.41)), __shape);
const __peer = new __sync.SyncBatchNorm(ctx, 64, { momentum: 0.1 });
let __round = 0;
const transport = {
  async allGather(mine: Float64Array): Promise<Float64Array[]> {
    if (++__round === 1) {
      const peer = __sync.momentsToArray(await __peer.momentsPartial(__peerX));
      __peer.forward(__peerX, __sync.mergeMoments([peer, mine].map(__sync.momentsFromArray))).destroy();
      return [mine, peer];
    }
    return [__sync.gradSumsToArray(await __peer.gradPartial(__peerGy)), mine];
  },
};
`,
    epilogue: `
// Reference: batch norm of the concatenated batch (this shard's 4 samples, then the peer's 4).
const __both = [...(await x.read()), ...(await __peerX.read())];
const __ref = __reference(__both, [8, 64, 3, 3]);
__expectClose('SyncBatchNorm output (this shard of the whole batch)', await y.read(), __ref.y.subarray(0, 4 * 64 * 9), 1e-5, 1e-5);
// dL/dbias = Σdy per channel over the whole batch, identical on every shard.
const __gys = [...(await gy.read()), ...(await __peerGy.read())];
const __sumDy = Array.from({ length: 64 }, (_, c) => { let s = 0; for (let i = 0; i < 8; i++) for (let k = 0; k < 9; k++) s += __gys[(i * 64 + c) * 9 + k] ?? 0; return s; });
__assert.ok(gradInput && gradWeight && gradBias);
__expectClose('SyncBatchNorm gradBias (whole batch)', await gradBias.read(), __sumDy, 1e-5, 1e-5);
__assert.equal(__round, 2);
`,
  },

  'sync-encode': {
    backends: ['webgpu'],
    webgpuOnly:
      "the block records SyncBatchNorm's whole step, merges included, into your GPUCommandEncoder over your GPUBuffers; a CPU context has no encoder (encodeForward throws ArgumentError there)",
    prelude: `
// Your two shards' data: 4·64·9 values of x and of the loss gradient each.
const __data = (f: (i: number) => number) => Float32Array.from({ length: 4 * 64 * 9 }, (_, i) => f(i));
const batches = [
  { x: __data((i) => Math.cos(i * 0.91) * 4 + (i % 7)), gy: __data((i) => Math.sin(i * 0.53)) },
  { x: __data((i) => Math.sin(i * 0.29) * 3 - 2), gy: __data((i) => Math.cos(i * 0.41)) },
];
`,
    epilogue: `
__assert.equal(ctx.stats.submits, 0, 'the library submitted nothing of its own');
// Reference: BN + ReLU of the concatenated batch (shard 0's 4 samples, then shard 1's).
const __both = [...(batches[0]?.x ?? []), ...(batches[1]?.x ?? [])];
const __ref = __reference(__both, [8, 64, 3, 3]);
const __n = 4 * 64 * 9;
for (const [rank, s] of shards.entries()) {
  const __slice = __ref.y.subarray(rank * __n, (rank + 1) * __n).map((v) => Math.max(v, 0));
  __expectClose('shard ' + rank + ' output (BN + ReLU of the whole batch)', await s.y.read(), __slice, 1e-5, 1e-5);
  const __rm = (await s.bn.stateDict()).running_mean ?? [];
  __expectClose('shard ' + rank + ' running_mean', __rm, Array.from(__ref.mean, (m) => 0.1 * m), 1e-6, 1e-5);
}
// gradWeight is the whole batch's, identical on both shards.
__assert.deepEqual(await shards[0]?.grads.gradWeight.read(), await shards[1]?.grads.gradWeight.read());
`,
  },

  dtypes: {
    backends: BOTH,
    prelude: `
// Your activations and the loss gradient, as numbers.
const pixels = Float32Array.from({ length: 8 * 64 * 14 * 14 }, (_, i) => Math.sin(i * 0.37) * 3 + (i % 7));
const lossGrad = Float32Array.from({ length: 8 * 64 * 14 * 14 }, (_, i) => Math.cos(i * 0.11));
`,
    epilogue: `
__assert.equal(y.dtype, 'float16');
__assert.equal(gradInput?.dtype, 'float16');
__assert.equal(gradWeight?.dtype, 'float32');
__assert.equal(asBf16.dtype, 'bfloat16');
__assert.equal(bits.length, values.length);
__assert.ok(bits instanceof Uint16Array, 'read() of a float16 tensor gives its stored patterns');
__assert.deepEqual(bits, await y.readBits());
// y is the float16 rounding of BN of the float16 input: half an ulp of float16 (2^-11 relative,
// 2^-10 with the float32 arithmetic before it) of the float64 reference, plus the float32
// evaluation's absolute error on inputs up to |x| = 10 (x − K and its scaling: about
// 10·invstd·2^-24 ≈ 2e-7, bounded here by 2^-20), which dominates near y = 0.
const __x = await x.readFloat32();
const __ref = __reference(__x, [8, 64, 14, 14]);
__expectClose('y (float16)', values, __ref.y, 2 ** -20, 2 ** -10);
`,
  },

  pt: {
    backends: BOTH,
    files: { 'model.pt': PT_FIXTURE },
    prelude: '',
    epilogue: `
__assert.deepEqual(file.batchNorms.map((l) => l.name), ['bn1', 'layer1.0.bn1', 'head.norm']);
__assert.equal(w?.dtype, 'F16');
__assert.deepEqual(w?.shape, [4, 4, 3, 3]);
const __sd = await bn.stateDict();
for (const k of ['weight', 'bias', 'running_mean', 'running_var'] as const) __assert.deepEqual(__sd[k], layer.stateDict[k], k);
__assert.equal(__sd.num_batches_tracked, 3);
`,
  },

  safetensors: {
    backends: BOTH,
    files: { 'model.safetensors': 'test/fixtures/models/state.safetensors' },
    prelude: '',
    epilogue: `
const __back = __io.parseSafetensors(__fs.readFileSync('bn1.safetensors'));
__assert.deepEqual([...__back.keys()].sort(), ['bn1.bias', 'bn1.num_batches_tracked', 'bn1.running_mean', 'bn1.running_var', 'bn1.weight']);
for (const k of ['bn1.weight', 'bn1.bias', 'bn1.running_mean', 'bn1.running_var']) __assert.deepEqual(__back.get(k)?.data, file.tensors.get(k)?.data, k);
`,
  },

  'read-limits': {
    backends: BOTH,
    files: { 'model.pt': PT_FIXTURE },
    prelude: `
const upload = new Blob([__fs.readFileSync('model.pt')]);
`,
    epilogue: `
// The fixture is small: read under the block's limits, and refused as LIMIT under a tighter one.
const __read = await readModelFile(upload, { maxBytes: 64 * 2 ** 20, maxEntries: 10_000 });
__assert.deepEqual(__read.batchNorms.map((l) => l.name), ['bn1', 'layer1.0.bn1', 'head.norm']);
await __assert.rejects(readModelFile(upload, { maxEntries: 2 }), (e: unknown) => e instanceof ModelFileError && e.reason === 'LIMIT');
`,
  },

  onnx: {
    backends: BOTH,
    files: { 'model.onnx': 'test/fixtures/models/bn.onnx' },
    prelude: '',
    epilogue: `
__assert.equal(file.nodes.length, 5);
__assert.equal(bn.eps, 0.001);
__assert.equal(bn.momentum, 0.2);
__assert.deepEqual(convWeight?.shape, [5, 3, 3, 3]);
__assert.deepEqual((await bn.stateDict())['running_var'], layer.stateDict['running_var']);
`,
  },

  fold: {
    backends: BOTH,
    files: { 'model.pt': PT_FIXTURE },
    prelude: `
// Your Keras Conv2D(64, 3) kernel and BatchNormalization weights (layer.get_weights()).
const kernel = Float32Array.from({ length: 3 * 3 * 32 * 64 }, (_, i) => Math.sin(i * 0.13));
const gamma = Float32Array.from({ length: 64 }, (_, c) => 1 + c / 64);
const beta = Float32Array.from({ length: 64 }, (_, c) => c / 64 - 0.5);
const movingMean = Float32Array.from({ length: 64 }, (_, c) => Math.cos(c));
const movingVariance = Float32Array.from({ length: 64 }, (_, c) => 0.5 + c / 32);
`,
    epilogue: `
const __w = await folded.weight.read();
__expectClose('folded weight (tensors vs CPU)', __w, weight, 0, 2 ** -20);
__expectClose('folded bias (tensors vs CPU)', await folded.bias.read(), bias, 1e-6, 2 ** -20);
if (ctx.device) {
  __expectClose('folded weight (your encoder)', await outWeight.read(), __w, 0, 0);
  __expectClose('folded bias (your encoder)', await outBias.read(), await folded.bias.read(), 0, 0);
}
// The fold scales each output channel by γ/√(var + eps): channel 0 of the PyTorch weight.
const __s = (layer.stateDict.weight?.[0] ?? 1) / Math.sqrt((layer.stateDict.running_var?.[0] ?? 1) + 1e-5);
__expectClose('channel 0 scale', weight.subarray(0, 36), Array.from(conv.data.subarray(0, 36), (v) => v * __s), 1e-7, 2 ** -22);
`,
  },
};
