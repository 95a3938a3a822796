/**
 * TensorFlow.js peers. Training forward is what a tfjs user writes, `tf.moments` + `tf.batchNorm`;
 * inference is `tf.batchNorm` with the running statistics. tfjs normalizes over broadcast
 * statistics, so channels_first inputs are viewed as [N, C, S, 1] (statistics over axes 0, 2, 3,
 * kept as [1, C, 1, 1]) and channels_last / rank-2 inputs as [N·S, C] (statistics over axis 0):
 * reshapes only, no data movement.
 *
 * tfjs-webgpu runs on the harness's shared GPUDevice (its WebGPUBackend constructor takes one), so
 * draining that queue drains tfjs: after K iterations the pending command encoder is submitted
 * (`submitQueue`) and `device.queue.onSubmittedWorkDone()` awaited; tensors are disposed per
 * iteration, never read back while timing.
 */
import type * as TfCore from '@tensorflow/tfjs-core';
import type { WebGPUBackend } from '@tensorflow/tfjs-backend-webgpu';
import { relativeError } from './data.js';
import type { SharedGpu } from './gpu.js';
import { describeError, unavailableSet, type CaseContext, type ImplSet } from './impl.js';

export type Tf = typeof TfCore;

/** What the environment loads: tfjs-core with the cpu backend registered, and the webgpu package. */
export interface TfjsModules {
  readonly tf: Tf;
  /** The backend class of @tensorflow/tfjs-backend-webgpu, or null with `webgpuError`. */
  readonly WebGPUBackend: (new (device: GPUDevice, adapterInfo?: GPUAdapterInfo) => WebGPUBackend) | null;
  readonly webgpuError?: string;
}

export interface TfjsRuntime {
  readonly tf: Tf;
  readonly version: string;
  /** The tfjs-webgpu backend on the shared device, or null. */
  readonly webgpu: WebGPUBackend | null;
  readonly webgpuReason: string | null;
  readonly cpuReason: string | null;
}

/** Registers tfjs-webgpu on the shared device (replacing the package's own factory) and checks the cpu backend. */
export async function setUpTfjs(modules: TfjsModules, gpu: SharedGpu | null): Promise<TfjsRuntime> {
  const tf = modules.tf;
  let webgpu: WebGPUBackend | null = null;
  let webgpuReason: string | null = null;
  if (!gpu) webgpuReason = 'no WebGPU device';
  else if (!modules.WebGPUBackend) webgpuReason = modules.webgpuError ?? '@tensorflow/tfjs-backend-webgpu did not load';
  else {
    try {
      const Backend = modules.WebGPUBackend;
      if (tf.findBackendFactory('webgpu')) tf.removeBackend('webgpu');
      let created: WebGPUBackend | null = null;
      tf.registerBackend(
        'webgpu',
        () => {
          created = new Backend(gpu.device, gpu.adapterInfo ?? undefined);
          return created;
        },
        1,
      );
      if (!(await tf.setBackend('webgpu')) || !created) throw new Error("tf.setBackend('webgpu') failed");
      webgpu = created;
    } catch (err) {
      webgpuReason = `tfjs-webgpu failed to start: ${describeError(err)}`;
    }
  }
  let cpuReason: string | null = null;
  try {
    if (!(await tf.setBackend('cpu'))) cpuReason = "tf.setBackend('cpu') failed";
  } catch (err) {
    cpuReason = `tfjs-cpu failed to start: ${describeError(err)}`;
  }
  return { tf, version: tf.version_core, webgpu, webgpuReason, cpuReason };
}

/** `tfjs-webgpu` or `tfjs-cpu` train and eval for one case. */
export function createTfjs(cc: CaseContext, rt: TfjsRuntime | null, which: 'webgpu' | 'cpu', loadError: string | null): ImplSet {
  const impl = which === 'webgpu' ? ('tfjs-webgpu' as const) : ('tfjs-cpu' as const);
  if (!rt) return unavailableSet(impl, ['train', 'eval'], loadError ?? 'tfjs did not load');
  const reason = which === 'webgpu' ? rt.webgpuReason : rt.cpuReason;
  const backend = which === 'webgpu' ? rt.webgpu : null;
  if (reason || (which === 'webgpu' && !backend)) return unavailableSet(impl, ['train', 'eval'], reason ?? 'no tfjs-webgpu backend');
  const tf = rt.tf;
  const d = cc.data;
  const g = d.geometry;
  const cf = !g.channelInner;
  const xShape = cf ? [g.n, g.c, g.s, 1] : [g.size / g.c, g.c];
  const paramShape = cf ? [1, g.c, 1, 1] : [g.c];
  const axes = cf ? [0, 2, 3] : [0];

  const activate = async (): Promise<void> => {
    if (tf.getBackend() !== which && !(await tf.setBackend(which))) throw new Error(`tf.setBackend('${which}') failed`);
  };

  let tensors: { x: TfCore.Tensor; w: TfCore.Tensor; b: TfCore.Tensor; rm: TfCore.Tensor; rv: TfCore.Tensor } | null = null;
  const ensureTensors = async (): Promise<NonNullable<typeof tensors>> => {
    await activate();
    if (!tensors) {
      tensors = {
        x: tf.tensor(d.x, xShape, 'float32'),
        w: tf.tensor(d.weight, paramShape, 'float32'),
        b: tf.tensor(d.bias, paramShape, 'float32'),
        rm: tf.tensor(d.runningMean, paramShape, 'float32'),
        rv: tf.tensor(d.runningVar, paramShape, 'float32'),
      };
    }
    return tensors;
  };

  // tfjs-cpu's FusedBatchNorm kernel ignores broadcasting: it cycles through the statistics as if
  // they were indexed by the last axis, so for channels_first ([1, C, 1, 1] statistics) it returns
  // wrong values (caught by the check). There the cpu backend gets the same maths from
  // broadcasting ops: scale = w·rsqrt(var + eps), shift = b − mean·scale (per channel), then
  // y = x·scale + shift (two full-size elementwise ops, fewer than tf.batchNorm's composite).
  const composite = which === 'cpu' && cf;
  const normalize = (t: NonNullable<typeof tensors>, mean: TfCore.Tensor, variance: TfCore.Tensor): TfCore.Tensor => {
    if (!composite) return tf.batchNorm(t.x, mean, variance, t.b, t.w, d.eps);
    const scale = tf.mul(t.w, tf.rsqrt(tf.add(variance, d.eps)));
    const shift = tf.sub(t.b, tf.mul(mean, scale));
    return tf.add(tf.mul(t.x, scale), shift);
  };
  const step = (op: 'train' | 'eval', t: NonNullable<typeof tensors>): TfCore.Tensor =>
    tf.tidy(() => {
      if (op === 'eval') return normalize(t, t.rm, t.rv);
      const { mean, variance } = tf.moments(t.x, axes, cf);
      return normalize(t, mean, variance);
    });

  /** Submits what tfjs-webgpu has recorded and waits for the queue; a no-op on the cpu backend. */
  const drain = async (): Promise<void> => {
    if (!backend) return;
    backend.ensureCommandEncoderReady();
    backend.endComputePassEncoder();
    backend.submitQueue();
    await backend.device.queue.onSubmittedWorkDone();
  };

  const make = (op: 'train' | 'eval') => ({
    impl,
    op,
    kind: which === 'webgpu' ? ('gpu' as const) : ('cpu' as const),
    note:
      (op === 'train' ? 'tf.moments + ' : '') +
      (composite
        ? 'x·scale + shift with broadcasting ops (tf.batchNorm on the cpu backend is wrong for channels_first)'
        : op === 'train'
          ? 'tf.batchNorm'
          : 'tf.batchNorm with running stats') +
      ` on [${xShape.join(', ')}]` +
      (which === 'webgpu' ? ', shared GPUDevice, submitQueue + onSubmittedWorkDone per sample' : ''),
    async verify(): Promise<number> {
      const t = await ensureTensors();
      const y = step(op, t);
      try {
        return relativeError(await y.data<'float32'>(), op === 'train' ? d.refTrain : d.refEval);
      } finally {
        y.dispose();
      }
    },
    async prepare(): Promise<void> {
      await ensureTensors();
    },
    async run(k: number): Promise<number | null> {
      const t = tensors;
      if (!t || tf.getBackend() !== which) throw new Error('internal: run() without prepare()');
      for (let i = 0; i < k; i++) step(op, t).dispose();
      await drain();
      return null;
    },
    dispose(): void {},
  });

  return {
    items: [make('train'), make('eval')],
    dispose() {
      if (tensors) for (const t of Object.values(tensors)) t.dispose();
      tensors = null;
    },
  };
}
