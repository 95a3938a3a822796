/**
 * float16 storage rows: `webgpu-batchnorm-f16` (train, eval, backward on float16 x, y, dy, dx,
 * with float32 statistics, exactly as `webgpu-batchnorm` runs: zero-copy tensors over the
 * harness's buffers, K iterations recorded into one encoder, one submit) and `copy-floor-f16`,
 * the WGSL vec4 copy over a float16 tensor's bytes (half of the float32 floor's): the bandwidth
 * floor of a half-precision pass. Each f16 row's `ratio_to_floor` is to that floor; `ratio_to_f32`
 * compares it with the float32 row of the same op.
 *
 * The check: the case's x and dy rounded to float16 (ties to even), references recomputed in
 * float64 from those values, outputs widened from float16. The error is then the output rounding
 * (≤ 2^-11 relative), inside the harness's 1e-3 gate.
 */
import { referencesFor } from './data.js';
import { COPY_VARIANTS, CopyFloorKernel, createTensorBuffer, poison, readFloats, submitTimed } from './gpu.js';
import { oursBackwardImpl, oursForwardImpl, type OursTensors } from './impl-ours.js';
import { unavailableSet, type CaseContext, type Impl, type ImplSet } from './impl.js';
import type * as Library from '../../src/index.js';

/** float16 bit patterns of `values`, packed two per float32 slot (the bytes a GPU buffer holds). */
function halfWords(lib: CaseContext['lib'], values: ArrayLike<number>): Float32Array<ArrayBuffer> {
  const bits = new Uint16Array(values.length + (values.length % 2));
  for (let i = 0; i < values.length; i++) bits[i] = lib.float16Bits(values[i] as number);
  return new Float32Array(bits.buffer);
}

/** float16 words read back as float32 slots → the values they hold. */
function halfValues(lib: CaseContext['lib'], words: Float32Array, count: number): Float64Array {
  const bits = new Uint16Array(words.buffer, words.byteOffset, count);
  return Float64Array.from(bits, (b) => lib.float16Value(b));
}

export function createHalfGpu(cc: CaseContext, ctx: Library.BatchNormContext | null): ImplSet {
  const gpu = cc.gpu;
  const ops = ['train', 'eval', 'backward'] as const;
  if (!gpu || !ctx) {
    return {
      items: [
        ...unavailableSet('copy-floor-f16', ['copy'], 'no WebGPU device').items,
        ...unavailableSet('webgpu-batchnorm-f16', ops, 'no WebGPU device').items,
      ],
      dispose: () => {},
    };
  }
  const device = gpu.device;
  const lib = cc.lib;
  const d = cc.data;
  const g = d.geometry;
  const n = g.size;
  const words = Math.ceil(n / 2);
  const bytes = words * 4;
  const xWords = halfWords(lib, d.x);
  const dyWords = halfWords(lib, d.dy);
  const xHalf = halfValues(lib, xWords, n);
  const dyHalf = halfValues(lib, dyWords, n);
  const ref = referencesFor(g, xHalf, dyHalf, d.weight, d.bias, d.runningMean, d.runningVar, d.eps);
  const xBuffer = createTensorBuffer(device, 'bench.f16.x', bytes, xWords);
  const dyBuffer = createTensorBuffer(device, 'bench.f16.dy', bytes, dyWords);
  const shape = cc.shape;
  const layout = cc.layout;
  const x = ctx.tensorFromBuffer(xBuffer, shape, { layout, label: 'x', dtype: 'float16' });
  const dy = ctx.tensorFromBuffer(dyBuffer, shape, { layout, label: 'dy', dtype: 'float16' });
  const native = device.features.has('shader-f16');
  const note = `float16 x, y, dy, dx (${native ? 'native f16 normalize, packed reductions' : 'packed u32 words'}), float32 statistics; tensorFromBuffer + K× encodeForward/encodeBackward, one submit`;
  // The inputs and the floor's buffers; the rows own theirs.
  const buffers: GPUBuffer[] = [xBuffer, dyBuffer];
  const made = (label: string, size: number): GPUBuffer => {
    const b = createTensorBuffer(device, label, size);
    buffers.push(b);
    return b;
  };

  // The floor: copy the float16 tensor's bytes (words / 4 vec4s; the strided or blocked pattern,
  // whichever is faster here, as copy-floor).
  const floorFloats = Math.ceil(words / 4) * 4;
  const floorSrc = made('bench.f16.floor.src', floorFloats * 4);
  device.queue.writeBuffer(floorSrc, 0, xWords);
  const floorDst = made('bench.f16.floor.dst', floorFloats * 4);
  const kernels = [
    new CopyFloorKernel(device, floorSrc, floorDst, floorFloats, 'strided'),
    new CopyFloorKernel(device, floorSrc, floorDst, floorFloats, 'blocked'),
  ];
  let kernel = kernels[0] as CopyFloorKernel;
  const runFloor = (k: number): Promise<number | null> => submitTimed(device, 'bench.f16.copyFloor', (e) => kernel.encode(e, k), cc.span);
  const floor: Impl = {
    impl: 'copy-floor-f16',
    op: 'copy',
    kind: 'gpu',
    get note() {
      return `WGSL vec4 copy of the float16 tensor's ${bytes} bytes, ${COPY_VARIANTS[kernel.variant].label}`;
    },
    async verify() {
      const best = [Number.POSITIVE_INFINITY, Number.POSITIVE_INFINITY];
      let worst = 0;
      for (const [i, candidate] of kernels.entries()) {
        kernel = candidate;
        poison(device, floorDst, floorFloats);
        await runFloor(1);
        const out = new Uint32Array((await readFloats(device, floorDst, words)).buffer);
        const src = new Uint32Array(xWords.buffer, 0, words);
        worst = Math.max(worst, out.some((w, j) => w !== src[j]) ? 1 : 0);
        for (let round = 0; round < 3; round++) {
          const t0 = performance.now();
          await runFloor(2);
          best[i] = Math.min(best[i] as number, (performance.now() - t0) / 2);
        }
      }
      kernel = kernels[(best[1] as number) < (best[0] as number) ? 1 : 0] as CopyFloorKernel;
      return worst;
    },
    run: runFloor,
    dispose: () => {
      for (const k of kernels) k.destroy();
    },
  };

  // The float32 rows' own recordings (impl-ours.ts) over float16 tensors.
  const tensors: OursTensors = {
    impl: 'webgpu-batchnorm-f16',
    label: 'bench.f16',
    variant: 'pytorch',
    dtype: 'float16',
    x,
    dy,
    bytes,
    words,
    decode: (out) => halfValues(lib, out, n),
    refs: ref,
    note,
  };

  return {
    items: [
      floor,
      oursForwardImpl(cc, ctx, tensors, 'train'),
      oursForwardImpl(cc, ctx, tensors, 'eval'),
      oursBackwardImpl(cc, ctx, tensors),
    ],
    dispose() {
      x.destroy();
      dy.destroy();
      for (const b of buffers) b.destroy();
    },
  };
}
