/**
 * `ort-webgpu`: ONNX Runtime Web's WebGPU execution provider (JSEP) running a one-node
 * BatchNormalization model built in code (see onnx.ts), inference only (ORT Web has no training
 * mode for it). Input and output stay on the GPU: `ort.Tensor.fromGpuBuffer` for both, the output
 * pre-allocated and passed in `fetches`, `preferredOutputLocation: 'gpu-buffer'`. ORT flushes its
 * commands at the end of every `run()`; after K runs its queue is drained with
 * `onSubmittedWorkDone()`.
 *
 * The model's input is (N, C, S) for channels_first and (N·S, C, 1) for channels_last and rank 2:
 * the same bytes with the channel at axis 1 (ONNX's convention), so no transposes are involved.
 * (Not (N·S, C): JSEP's BatchNormalization returns wrong values for a rank-2 input, max_err 0.7
 * on [256, 1024]; the trailing 1 is the same tensor for the maths.) `preferredLayout: 'NCHW'`
 * keeps ORT's layout transformer from wrapping the node in transposes.
 *
 * JSEP (the EP of the default `onnxruntime-web` entry, 1.23) ignores `env.webgpu.device` and
 * requests its own device from the adapter, so ORT usually runs on a device of its own: its input
 * is then a copy of x on that device and the drain waits on that device's queue. The native
 * WebGPU EP (`onnxruntime-web/webgpu`) accepts a device, but in 1.23 every run on this setup
 * failed with "Failed to wait for the operation:3".
 */
import type * as Ort from 'onnxruntime-web';
import { relativeError } from './data.js';
import { createTensorBuffer, poison, readFloats, type SharedGpu } from './gpu.js';
import { describeError, unavailableSet, type CaseContext, type ImplSet } from './impl.js';
import { batchNormModel } from './onnx.js';

export type OrtModule = typeof Ort;

export interface OrtRuntime {
  readonly ort: OrtModule;
  readonly version: string;
  /** The device ORT actually runs on, known after the first session; null until then. */
  device: GPUDevice | null;
  /** True when ORT accepted the shared device. */
  shared: boolean | null;
}

export function setUpOrt(ort: OrtModule, gpu: SharedGpu | null): OrtRuntime {
  ort.env.logLevel = 'error';
  ort.env.wasm.numThreads = 1;
  if (gpu) ort.env.webgpu.device = gpu.device;
  return { ort, version: ort.env.versions.web ?? ort.env.versions.common, device: null, shared: null };
}

export async function createOrt(cc: CaseContext, rt: OrtRuntime | null, loadError: string | null): Promise<ImplSet> {
  if (!rt) return unavailableSet('ort-webgpu', ['eval'], loadError ?? 'onnxruntime-web did not load');
  if (!cc.gpu || !cc.xBuffer) return unavailableSet('ort-webgpu', ['eval'], 'no WebGPU device');
  const { ort } = rt;
  const d = cc.data;
  const g = d.geometry;
  const dims = g.channelInner ? [g.size / g.c, g.c, 1] : [g.n, g.c, g.s];
  const model = batchNormModel({ dims, scale: d.weight, bias: d.bias, mean: d.runningMean, variance: d.runningVar, epsilon: d.eps });
  let session: Ort.InferenceSession;
  try {
    // `device` is read by the native WebGPU EP (onnxruntime-web/webgpu) and ignored by JSEP;
    // disable_cpu_ep_fallback makes session creation fail rather than quietly run the node on
    // the wasm CPU EP.
    const ep = { name: 'webgpu', preferredLayout: 'NCHW', device: cc.gpu.device } as Ort.InferenceSession.WebGpuExecutionProviderOption;
    session = await ort.InferenceSession.create(model, {
      executionProviders: [ep],
      preferredOutputLocation: 'gpu-buffer',
      graphOptimizationLevel: 'all',
      extra: { session: { disable_cpu_ep_fallback: '1' } },
    });
  } catch (err) {
    return unavailableSet('ort-webgpu', ['eval'], `InferenceSession.create failed: ${describeError(err)}`);
  }
  if (!rt.device) {
    rt.device = await ort.env.webgpu.device;
    rt.shared = rt.device === cc.gpu.device;
  }
  const device = rt.device;
  // On the shared device ORT reads the harness's x; otherwise it gets its own copy on its device.
  const xBuffer = rt.shared ? cc.xBuffer : createTensorBuffer(device, 'bench.ort.x', g.size * 4, d.x);
  const yBuffer = createTensorBuffer(device, 'bench.ort.y', g.size * 4);
  const input = ort.Tensor.fromGpuBuffer(xBuffer, { dataType: 'float32', dims });
  const output = ort.Tensor.fromGpuBuffer(yBuffer, { dataType: 'float32', dims });
  const feeds = { X: input };
  const fetches = { Y: output };
  const run = async (k: number): Promise<null> => {
    for (let i = 0; i < k; i++) await session.run(feeds, fetches);
    await device.queue.onSubmittedWorkDone();
    return null;
  };
  return {
    items: [
      {
        impl: 'ort-webgpu',
        op: 'eval',
        kind: 'gpu',
        note: `webgpu EP, one-node BatchNormalization, dims [${dims.join(', ')}], GPU-buffer input and pre-allocated GPU-buffer output, ${rt.shared ? 'shared GPUDevice' : "ORT's own GPUDevice (JSEP creates its own)"}`,
        async verify() {
          poison(device, yBuffer, g.size);
          await run(1);
          return relativeError(await readFloats(device, yBuffer, g.size), d.refEval);
        },
        run,
        dispose() {},
      },
    ],
    dispose() {
      void session.release();
      yBuffer.destroy();
      if (xBuffer !== cc.xBuffer) xBuffer.destroy();
    },
  };
}
