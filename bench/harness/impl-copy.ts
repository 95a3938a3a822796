/**
 * The two floors every time is compared with: `copy-floor`, a WGSL vec4 copy kernel over one
 * tensor's bytes (shaders' bandwidth floor: read once, write once), and `copy-b2b`,
 * `copyBufferToBuffer` of the same bytes (the driver's copy path, not reachable from a shader).
 */
import { relativeError } from './data.js';
import { CopyFloorKernel, createTensorBuffer, poison, readFloats, submitTimed } from './gpu.js';
import { unavailableSet, type CaseContext, type ImplSet } from './impl.js';

export function createCopies(cc: CaseContext): ImplSet {
  const gpu = cc.gpu;
  const src = cc.xBuffer;
  if (!gpu || !src) {
    return {
      items: [...unavailableSet('copy-floor', ['copy'], 'no WebGPU device').items, ...unavailableSet('copy-b2b', ['copy'], 'no WebGPU device').items],
      dispose: () => {},
    };
  }
  const device = gpu.device;
  const n = cc.data.geometry.size;
  const x = cc.data.x;
  const floorDst = createTensorBuffer(device, 'bench.copyFloor.dst', n * 4);
  const b2bDst = createTensorBuffer(device, 'bench.copyB2b.dst', n * 4);
  const kernel = new CopyFloorKernel(device, src, floorDst, n);
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
        note: 'WGSL vec4 grid-stride copy, 64 lanes x 16 vec4 per invocation, one pass per iteration',
        async verify() {
          poison(device, floorDst, n);
          await runFloor(1);
          return relativeError(await readFloats(device, floorDst, n), x);
        },
        run: runFloor,
        dispose: () => kernel.destroy(),
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
