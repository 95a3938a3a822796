/**
 * The two floors every time is compared with: `copy-floor`, a WGSL vec4 copy kernel over one
 * tensor's bytes (shaders' bandwidth floor: read once, write once), and `copy-b2b`,
 * `copyBufferToBuffer` of the same bytes (the driver's copy path, not reachable from a shader).
 *
 * copy-floor.wgsl has two access patterns (grid-stride, coalesced on GPUs; blocked, better on
 * SwiftShader); both are checked, raced a few times, and the faster one is the floor, so the
 * floor is never flattered by a pattern the device dislikes.
 */
import { relativeError } from './data.js';
import { COPY_VARIANTS, CopyFloorKernel, createTensorBuffer, poison, readFloats, submitTimed } from './gpu.js';
import { unavailableSet, type CaseContext, type ImplSet } from './impl.js';

export function createCopies(cc: CaseContext): ImplSet {
  const gpu = cc.gpu;
  const src = cc.xBuffer;
  if (!gpu || !src) {
    return {
      items: [
        ...unavailableSet('copy-floor', ['copy'], 'no WebGPU device').items,
        ...unavailableSet('copy-b2b', ['copy'], 'no WebGPU device').items,
      ],
      dispose: () => {},
    };
  }
  const device = gpu.device;
  const n = cc.data.geometry.size;
  const x = cc.data.x;
  const floorDst = createTensorBuffer(device, 'bench.copyFloor.dst', n * 4);
  const b2bDst = createTensorBuffer(device, 'bench.copyB2b.dst', n * 4);
  const kernels = [new CopyFloorKernel(device, src, floorDst, n, 'strided'), new CopyFloorKernel(device, src, floorDst, n, 'blocked')];
  let kernel = kernels[0] as CopyFloorKernel;
  let raced = '';
  const runFloor = (k: number): Promise<number | null> => submitTimed(device, 'bench.copyFloor', (e) => kernel.encode(e, k), cc.span);
  const runB2b = (k: number): Promise<number | null> =>
    submitTimed(
      device,
      'bench.copyB2b',
      (e) => {
        for (let i = 0; i < k; i++) e.copyBufferToBuffer(src, 0, b2bDst, 0, n * 4);
      },
      cc.span,
    );
  return {
    items: [
      {
        impl: 'copy-floor',
        op: 'copy',
        kind: 'gpu',
        get note() {
          return `WGSL vec4 copy, ${COPY_VARIANTS[kernel.variant].label}, one pass per iteration${raced}`;
        },
        async verify() {
          let worst = 0;
          for (const candidate of kernels) {
            kernel = candidate;
            poison(device, floorDst, n);
            await runFloor(1);
            worst = Math.max(worst, relativeError(await readFloats(device, floorDst, n), x));
          }
          // Race the two patterns (best of three, 2 iterations each) and keep the faster.
          const best = kernels.map(() => Number.POSITIVE_INFINITY);
          for (let round = 0; round < 3; round++) {
            for (const [i, candidate] of kernels.entries()) {
              kernel = candidate;
              const t0 = performance.now();
              await runFloor(2);
              best[i] = Math.min(best[i] as number, (performance.now() - t0) / 2);
            }
          }
          const winner = (best[1] as number) < (best[0] as number) ? 1 : 0;
          kernel = kernels[winner] as CopyFloorKernel;
          raced = ` (faster in a race: strided ${(best[0] as number).toFixed(2)} ms vs blocked ${(best[1] as number).toFixed(2)} ms per copy)`;
          return worst;
        },
        run: runFloor,
        dispose: () => {
          for (const k of kernels) k.destroy();
        },
      },
      {
        impl: 'copy-b2b',
        op: 'copy',
        kind: 'gpu',
        note: 'encoder.copyBufferToBuffer of the same bytes',
        async verify() {
          poison(device, b2bDst, n);
          await runB2b(1);
          return relativeError(await readFloats(device, b2bDst, n), x);
        },
        run: runB2b,
        dispose: () => {},
      },
    ],
    dispose() {
      floorDst.destroy();
      b2bDst.destroy();
    },
  };
}
