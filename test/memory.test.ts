/**
 * Bounded memory in long-running apps (issue #7 §5): freed tensor storage is kept for reuse only up
 * to `poolBytes`, least recently released first out, on both backends; a stream of ever new input
 * sizes reuses size-classed GPU buffers instead of allocating per size; per-context caches stay
 * bounded; and the results stay exact while buffers are recycled and evicted underneath.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  ArgumentError,
  BatchNorm1d,
  DEFAULT_CPU_POOL_BYTES,
  DEFAULT_GPU_POOL_BYTES,
  createContext,
  type BatchNormContext,
  type Layout,
  type Tensor,
} from '../src/index.js';
import { FreeList } from '../src/free-list.js';
import { BufferPool, sizeClass } from '../src/gpu/buffer-pool.js';
import { TENSOR_USAGE } from '../src/gpu/constants.js';
import { cpuBatchStats, invstdOf } from '../src/batch-norm/cpu/cpu.js';
import { geometryOf } from '../src/batch-norm/geometry.js';
import { BACKENDS, caseCounter, checkClose, contextFor, gaussian, rng } from './helpers/backends.js';

const count = caseCounter('memory');
const C = 8;
const N = 2;
const LENGTHS = Array.from({ length: 499 }, (_, i) => i + 2); // 2..500: 499 distinct input sizes
/** Output tolerance against float64, as in test/helpers/run-case.ts. */
const outputTol = (ref: number): number => 1e-5 + 1e-5 * Math.abs(ref);

function randomInput(size: number, seed: number): Float32Array {
  const next = rng(seed);
  return Float32Array.from({ length: size }, () => 3 + 2 * gaussian(next));
}

/** Training-mode output of a default BatchNorm1d, float64, in the memory order of `layout`. */
function referenceOutput(x: Float32Array, shape: number[], layout: Layout): Float64Array {
  const g = geometryOf(shape, layout);
  const stats = cpuBatchStats(x, g);
  const invstd = invstdOf(stats.biasedVar, 1e-5);
  const channel = (i: number): number => (g.order === 'cf' ? Math.floor(i / g.s) % g.c : i % g.c);
  return Float64Array.from(x, (v, i) => (v - (stats.mean[channel(i)] as number)) * (invstd[channel(i)] as number));
}

/** Forward (training) one [N, C, len] batch, read y, check it, free everything. */
async function step(ctx: BatchNormContext, bn: BatchNorm1d, len: number): Promise<number> {
  const shape = [N, C, len];
  const layout: Layout = len % 2 === 0 ? 'channels_first' : 'channels_last';
  const x = ctx.tensor(randomInput(N * C * len, len), shape, { layout });
  const y = bn.forward(x);
  const out = await y.read();
  const { failure, maxErr } = checkClose(`y (len ${len}, ${layout})`, out, referenceOutput(await x.read(), shape, layout), (i) =>
    outputTol(out[i] as number),
  );
  x.destroy();
  y.destroy();
  if (failure) throw new Error(failure);
  return maxErr;
}

describe('FreeList: byte cap, LRU by release time', () => {
  it('evicts the least recently released item over all keys, and take() returns the newest of a key', () => {
    const evicted: string[] = [];
    const list = new FreeList<{ name: string; bytes: number }>(
      100,
      (i) => i.bytes,
      (i) => evicted.push(i.name),
    );
    list.put('a', { name: 'a1', bytes: 40 });
    list.put('b', { name: 'b1', bytes: 30 });
    const a2 = { name: 'a2', bytes: 40 };
    list.put('a', a2);
    expect(list.bytes).toBe(110 - 40); // a1 went first: it was released longest ago
    expect(evicted).toEqual(['a1']);
    expect(list.take('a')).toBe(a2);
    expect(list.take('a')).toBeUndefined();
    list.put('c', { name: 'c1', bytes: 150 }); // bigger than the cap: evicted alone, b1 stays
    expect(evicted).toEqual(['a1', 'c1']);
    expect(list.bytes).toBe(30);
    expect(list.count).toBe(1);
  });

  it('a cap of 0 keeps nothing; drain() empties without evicting', () => {
    const evicted: number[] = [];
    const none = new FreeList<number>(
      0,
      () => 4,
      (i) => evicted.push(i),
    );
    none.put('k', 1);
    expect(evicted).toEqual([1]);
    const some = new FreeList<number>(
      64,
      () => 4,
      (i) => evicted.push(i),
    );
    some.put('k', 2);
    some.put('j', 3);
    expect(some.drain().sort()).toEqual([2, 3]);
    expect(some.bytes).toBe(0);
    expect(evicted).toEqual([1]);
  });
});

describe('sizeClass', () => {
  it('rounds up to a multiple of 16, at most 1/16 above the request, monotone, within maxBytes', () => {
    let previous = 0;
    for (let bytes = 1; bytes < 1 << 20; bytes += 1 + Math.floor(bytes / 97)) {
      const s = sizeClass(bytes, 2 ** 30);
      expect(s % 16).toBe(0);
      expect(s).toBeGreaterThanOrEqual(bytes);
      if (bytes > 256) expect(s / bytes).toBeLessThanOrEqual(1 + 1 / 16);
      expect(s).toBeGreaterThanOrEqual(previous);
      previous = s;
    }
    // a request that fits the device is never rounded past the device's maxBufferSize
    expect(sizeClass(1000 * 1024 + 16, 1000 * 1024 + 32)).toBe(1000 * 1024 + 16);
    // 499 input lengths of [2, 8, L] float32 need only a few dozen classes
    expect(new Set(LENGTHS.map((l) => sizeClass(N * C * l * 4, 2 ** 30))).size).toBeLessThan(100);
  });
});

describe('createContext({ poolBytes })', () => {
  const bad: unknown[] = [-1, 1.5, Number.NaN, Number.POSITIVE_INFINITY, 2 ** 53, '64', null, {}];
  it.each(['cpu', 'webgpu', 'auto'] as const)(
    'rejects invalid poolBytes with ArgumentError before touching any device (%s)',
    async (backend) => {
      // Any access to this device would throw something other than ArgumentError.
      const untouchable = new Proxy({} as GPUDevice, {
        get(_t, prop): never {
          throw new Error(`device.${String(prop)} was touched`);
        },
      });
      for (const poolBytes of bad) {
        const options = { backend, device: untouchable, poolBytes } as unknown as Parameters<typeof createContext>[0];
        const err: unknown = await createContext(options).then(
          () => null,
          (e: unknown) => e,
        );
        expect(err, `poolBytes ${String(poolBytes)}`).toBeInstanceOf(ArgumentError);
        expect((err as Error).message).toMatch(/poolBytes must be a non-negative integer/);
      }
      if (backend !== 'auto') count(backend);
    },
  );

  it.each(BACKENDS)('defaults and explicit values show in ctx.poolBytes (%s)', async (backend) => {
    const byDefault = await contextFor(backend);
    const explicit = await createContext({ backend, poolBytes: 12345 });
    try {
      expect(byDefault.poolBytes).toBe(backend === 'webgpu' ? DEFAULT_GPU_POOL_BYTES : DEFAULT_CPU_POOL_BYTES);
      expect(explicit.poolBytes).toBe(12345);
      expect(byDefault.stats.pooledBytes).toBe(0);
      count(backend);
    } finally {
      byDefault.destroy();
      explicit.destroy();
    }
  });
});

describe.each(BACKENDS)('bounded pool on %s', (backend) => {
  it('keeps the most recently freed storage within poolBytes, evicting the least recently freed', async () => {
    // Sizes whose size class is exact (4, 8 and 12 KiB), so both backends count the same bytes.
    const KiB = 1024;
    const ctx = await createContext({ backend, poolBytes: 16 * KiB });
    try {
      const bn = new BatchNorm1d(ctx, 4);
      const input = (values: number): Tensor => ctx.tensor(randomInput(values, values), [values / 4, 4]);
      const xs = [input(1024), input(2048), input(3072)];
      const [ya, yb, yc] = xs.map((x) => bn.forward(x));
      if (!ya || !yb || !yc) throw new Error('forward returned nothing');
      expect(ctx.stats.pooledBytes).toBe(0);
      yb.destroy(); // 8 KiB, released first
      ya.destroy(); // 4 KiB
      expect(ctx.stats.pooledBytes).toBe(12 * KiB);
      yc.destroy(); // 12 KiB: 24 KiB > 16 KiB, so yb's storage (oldest) goes and ya's stays
      expect(ctx.stats.pooledBytes).toBe(16 * KiB);
      const created = ctx.stats.buffersCreated;
      bn.forward(xs[1] as Tensor); // 8 KiB: nothing of that size is left
      expect(ctx.stats.pooledBytes).toBe(16 * KiB);
      const y1 = bn.forward(xs[0] as Tensor); // 4 KiB: reuses ya's storage
      expect(ctx.stats.pooledBytes).toBe(12 * KiB);
      if (backend === 'webgpu') expect(ctx.stats.buffersCreated - created).toBe(1); // y2 only
      expect(Array.from(await y1.read())).toEqual(Array.from(await bn.forward(xs[0] as Tensor).read()));
      count(backend);
    } finally {
      ctx.destroy();
    }
  });

  it('a steady loop that makes its input, output and gradient each step keeps one step of storage', async () => {
    const ctx = await contextFor(backend);
    try {
      const bn = new BatchNorm1d(ctx, C);
      const shape = [N, C, 33];
      const pooled: number[] = [];
      for (let i = 0; i < 20; i++) {
        const x = ctx.tensor(randomInput(N * C * 33, i), shape);
        const y = bn.forward(x);
        const { gradInput, gradWeight, gradBias } = bn.backward(y);
        await gradInput?.read();
        for (const t of [x, y, gradInput, gradWeight, gradBias]) t?.destroy();
        pooled.push(ctx.stats.pooledBytes);
      }
      // Every step takes back what the previous one freed: the pool does not creep up to the cap.
      expect(new Set(pooled.slice(2)).size).toBe(1);
      count(backend);
    } finally {
      ctx.destroy();
    }
  });

  it('poolBytes: 0 keeps nothing and results stay exact', async () => {
    const ctx = await createContext({ backend, poolBytes: 0 });
    try {
      const bn = new BatchNorm1d(ctx, C);
      for (const len of [3, 7, 3, 64]) {
        await step(ctx, bn, len);
        expect(ctx.stats.pooledBytes).toBe(0);
      }
      count(backend);
    } finally {
      ctx.destroy();
    }
  });

  it('499 input sizes under a 64 KiB cap: never over the cap, every output exact', async () => {
    const cap = 64 * 1024;
    const ctx = await createContext({ backend, poolBytes: cap });
    try {
      const bn = new BatchNorm1d(ctx, C);
      let maxErr = 0;
      let maxPooled = 0;
      const live = ctx.stats.liveBuffers; // the module's own tensors
      for (const len of LENGTHS) {
        maxErr = Math.max(maxErr, await step(ctx, bn, len));
        maxPooled = Math.max(maxPooled, ctx.stats.pooledBytes);
        expect(ctx.stats.pooledBytes).toBeLessThanOrEqual(cap);
      }
      expect(ctx.stats.liveBuffers).toBe(live);
      console.log(`[memory] ${backend}, poolBytes ${cap}: 499 sizes, max pooled ${maxPooled} B, max |y − ref| ${maxErr.toExponential(2)}`);
      count(backend);
    } finally {
      ctx.destroy();
    }
  });

  it('499 input sizes with the default cap: pooled bytes bounded, GPU buffers per size class, caches bounded, no compiles', async () => {
    const ctx = await contextFor(backend);
    try {
      const bn = new BatchNorm1d(ctx, C);
      const before = ctx.stats;
      const poolCreatedBefore = ctx.gpu?.pool.created ?? 0;
      // Pipelines are cached by shader and override values, never by shape: count compiles per length.
      const compiledAt: number[] = [];
      let currentLength = 0;
      const device = ctx.device;
      if (device) {
        const create = device.createComputePipeline.bind(device);
        device.createComputePipeline = (descriptor: GPUComputePipelineDescriptor): GPUComputePipeline => {
          compiledAt.push(currentLength);
          return create(descriptor);
        };
      }
      for (const len of LENGTHS) {
        currentLength = len;
        await step(ctx, bn, len);
      }
      // Both layouts' pipelines compile on the first few lengths; the other ~490 compile nothing.
      expect(compiledAt.filter((len) => len > 10)).toEqual([]);
      await ctx.sync();
      const after = ctx.stats;
      expect(after.pooledBytes).toBeLessThanOrEqual(ctx.poolBytes);
      expect(after.liveBuffers).toBe(before.liveBuffers);
      const gpu = ctx.gpu;
      if (gpu) {
        // x, y and the readback staging buffer: at most three per size class, not per size.
        const classes = new Set(LENGTHS.map((l) => sizeClass(N * C * l * 4, gpu.device.limits.maxBufferSize))).size;
        const poolCreated = gpu.pool.created - poolCreatedBefore;
        expect(poolCreated).toBeLessThanOrEqual(3 * classes);
        expect(gpu.uniforms.size).toBeLessThanOrEqual(256);
        expect(gpu.bindGroups.size).toBeLessThanOrEqual(512);
        console.log(
          `[memory] webgpu, default poolBytes: 499 sizes → ${poolCreated} pooled buffers created for ${classes} size classes; ` +
            `buffersCreated ${before.buffersCreated} → ${after.buffersCreated} (uniforms are per shape, ≤ 256 kept); pooled ${after.pooledBytes} B; ` +
            `uniform cache ${gpu.uniforms.size}, bind groups ${gpu.bindGroups.size}; pipelines compiled at lengths ${JSON.stringify(compiledAt)}`,
        );
      } else {
        console.log(`[memory] cpu, default poolBytes: 499 sizes → pooled ${after.pooledBytes} B`);
      }
      count(backend);
    } finally {
      ctx.destroy();
    }
  });
});

describe('GPU pool eviction goes through the runtime', () => {
  let ctx: BatchNormContext;
  beforeAll(async () => {
    ctx = await contextFor('webgpu');
  });
  afterAll(() => ctx.destroy());

  it('BufferPool hands evicted free buffers to its retire callback (never destroys them itself) and never evicts live ones', () => {
    const device = ctx.device;
    if (!device) throw new Error('no device');
    const retired: GPUBuffer[] = [];
    const pool = new BufferPool(device, 8192, (b) => retired.push(b));
    const a = pool.acquire(4096, TENSOR_USAGE, 'bn.test.a');
    const b = pool.acquire(4096, TENSOR_USAGE, 'bn.test.b');
    const big = pool.acquire(65536, TENSOR_USAGE, 'bn.test.big'); // live, far over the cap
    pool.release(a);
    pool.release(b);
    expect(retired).toEqual([]);
    expect(pool.freeBytes).toBe(8192);
    const c = pool.acquire(8192, TENSOR_USAGE, 'bn.test.c');
    pool.release(c); // 16 KiB free > 8 KiB: a, then b (released longest ago) go
    expect(retired).toEqual([a, b]);
    expect(pool.live).toBe(1);
    pool.release(big); // bigger than the cap on its own: retired at once, c stays
    expect(retired).toEqual([a, b, big]);
    expect(pool.freeBytes).toBe(8192);
    expect(pool.acquire(8000, TENSOR_USAGE, 'bn.test.c2')).toBe(c); // same size class, reused
    expect(pool.created).toBe(4);
    for (const buffer of retired) buffer.destroy();
    pool.destroy();
    count('webgpu');
  });

  it('tensors recorded into caller encoders, then destroyed: evicted buffers are freed, not kept until ctx.destroy()', async () => {
    // Same sequence under a tiny cap and the default cap: what is kept until destroy (uniform
    // buffers a caller's encoder referenced) must not depend on the cap, i.e. include no evicted
    // tensor buffer; and the pool stays within its cap.
    const kept: number[] = [];
    for (const poolBytes of [16 * 1024, DEFAULT_GPU_POOL_BYTES]) {
      const c = await createContext({ backend: 'webgpu', poolBytes });
      try {
        const gpu = c.gpu;
        const device = c.device;
        if (!gpu || !device) throw new Error('no runtime');
        const bn = new BatchNorm1d(c, C);
        for (let len = 2; len <= 120; len++) {
          const shape = [N, C, len];
          const x = c.tensor(randomInput(N * C * len, len), shape);
          const y = c.tensor(new Float32Array(N * C * len), shape);
          const encoder = device.createCommandEncoder({ label: 'user.encoder' });
          bn.encodeForward(encoder, x, y);
          device.queue.submit([encoder.finish()]);
          const out = await y.read();
          const { failure } = checkClose(`y (len ${len})`, out, referenceOutput(await x.read(), shape, 'channels_first'), (i) =>
            outputTol(out[i] as number),
          );
          if (failure) throw new Error(failure);
          x.destroy();
          y.destroy();
          expect(c.stats.pooledBytes).toBeLessThanOrEqual(poolBytes);
        }
        await c.sync();
        kept.push(gpu.keptBytes);
      } finally {
        c.destroy();
      }
    }
    expect(kept[0]).toBe(kept[1]);
    count('webgpu');
  });

  it('a context evicts through GpuRuntime.retire', async () => {
    const small = await createContext({ backend: 'webgpu', poolBytes: 0 });
    try {
      const gpu = small.gpu;
      if (!gpu) throw new Error('no runtime');
      const retired: GPUBuffer[] = [];
      const retire = gpu.retire.bind(gpu);
      gpu.retire = (b: GPUBuffer): void => {
        retired.push(b);
        retire(b);
      };
      const x = small.tensor(randomInput(64, 1), [16, 4]);
      const y = new BatchNorm1d(small, 4).forward(x);
      const yBuffer = y.buffer;
      y.destroy();
      expect(retired).toEqual([yBuffer]);
      await small.sync();
      count('webgpu');
    } finally {
      small.destroy();
    }
  });
});
