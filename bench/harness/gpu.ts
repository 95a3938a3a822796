/**
 * WebGPU plumbing of the benchmark: the one device everybody shares, buffers, readback, GPU
 * timestamps around K iterations, and the two copy floors (a WGSL vec4 copy and
 * copyBufferToBuffer).
 */
import copyFloorSource from './copy-floor.wgsl?raw';

// GPUBufferUsage / GPUMapMode values, spelled out so this file does not depend on the globals
// (Node gets them from Dawn's `globals` only after the library loaded it).
export const USAGE = {
  MAP_READ: 0x0001,
  COPY_SRC: 0x0004,
  COPY_DST: 0x0008,
  UNIFORM: 0x0040,
  STORAGE: 0x0080,
  QUERY_RESOLVE: 0x0200,
} as const;
const MAP_MODE_READ = 0x0001;
/** Usage of every tensor buffer the benchmark makes. */
export const TENSOR_BUFFER_USAGE = USAGE.STORAGE | USAGE.COPY_SRC | USAGE.COPY_DST;

export interface SharedGpu {
  readonly device: GPUDevice;
  readonly adapter: GPUAdapter;
  readonly adapterInfo: GPUAdapterInfo | null;
  /** The device has `timestamp-query`. */
  readonly timestamps: boolean;
}

// Limits worth raising to the adapter's: the library needs the buffer sizes for big tensors, and
// tfjs-webgpu and ONNX Runtime ask for the compute ones on devices they create themselves.
const RAISED_LIMITS = [
  'maxBufferSize',
  'maxStorageBufferBindingSize',
  'maxComputeWorkgroupStorageSize',
  'maxComputeWorkgroupsPerDimension',
  'maxComputeWorkgroupSizeX',
  'maxComputeWorkgroupSizeY',
  'maxComputeWorkgroupSizeZ',
  'maxComputeInvocationsPerWorkgroup',
  'maxStorageBuffersPerShaderStage',
] as const;

/**
 * Requests the single device the library, the floors, tfjs-webgpu and ONNX Runtime share, so every
 * implementation runs on the same queue and the same limits.
 */
export async function createSharedGpu(gpu: GPU): Promise<SharedGpu> {
  const adapter = await gpu.requestAdapter();
  if (!adapter) throw new Error('navigator.gpu.requestAdapter() returned null');
  const requiredFeatures: GPUFeatureName[] = [];
  for (const f of ['timestamp-query', 'shader-f16', 'subgroups'] as const) {
    if (adapter.features.has(f)) requiredFeatures.push(f);
  }
  const requiredLimits: Record<string, number> = {};
  for (const name of RAISED_LIMITS) {
    const v = adapter.limits[name];
    if (typeof v === 'number') requiredLimits[name] = v;
  }
  const device = await adapter.requestDevice({ label: 'bench.device', requiredFeatures, requiredLimits });
  device.addEventListener('uncapturederror', (e) => {
    console.error(`[bench] uncaptured WebGPU error: ${(e as GPUUncapturedErrorEvent).error.message}`);
  });
  return { device, adapter, adapterInfo: adapter.info ?? null, timestamps: device.features.has('timestamp-query') };
}

/** A storage buffer holding `data` (or zeros). */
export function createTensorBuffer(device: GPUDevice, label: string, byteLength: number, data?: Float32Array): GPUBuffer {
  const size = Math.max(16, Math.ceil(byteLength / 16) * 16);
  const buffer = device.createBuffer({ label, size, usage: TENSOR_BUFFER_USAGE, mappedAtCreation: data !== undefined });
  if (data) {
    new Float32Array(buffer.getMappedRange(0, size)).set(data);
    buffer.unmap();
  }
  return buffer;
}

/** Copies `count` floats of `buffer` back to the CPU. */
export async function readFloats(device: GPUDevice, buffer: GPUBuffer, count: number, byteOffset = 0): Promise<Float32Array> {
  const size = Math.ceil((count * 4) / 4) * 4;
  const staging = device.createBuffer({ label: 'bench.readback', size, usage: USAGE.MAP_READ | USAGE.COPY_DST });
  try {
    const encoder = device.createCommandEncoder({ label: 'bench.readback.encoder' });
    encoder.copyBufferToBuffer(buffer, byteOffset, staging, 0, size);
    device.queue.submit([encoder.finish()]);
    await staging.mapAsync(MAP_MODE_READ);
    return new Float32Array(staging.getMappedRange().slice(0, count * 4));
  } finally {
    staging.destroy();
  }
}

/** Fills a buffer with NaN so a stale result can never pass the check. */
export function poison(device: GPUDevice, buffer: GPUBuffer, count: number): void {
  device.queue.writeBuffer(buffer, 0, new Float32Array(count).fill(Number.NaN));
}

/**
 * GPU time between two points of one submit, from `timestamp-query`: an empty compute pass that
 * writes the start before the timed work and one that writes the end after it.
 */
export class TimestampSpan {
  readonly #querySet: GPUQuerySet;
  readonly #resolve: GPUBuffer;
  readonly #read: GPUBuffer;

  constructor(device: GPUDevice) {
    this.#querySet = device.createQuerySet({ label: 'bench.timestamps', type: 'timestamp', count: 2 });
    this.#resolve = device.createBuffer({ label: 'bench.timestamps.resolve', size: 16, usage: USAGE.QUERY_RESOLVE | USAGE.COPY_SRC });
    this.#read = device.createBuffer({ label: 'bench.timestamps.read', size: 16, usage: USAGE.MAP_READ | USAGE.COPY_DST });
  }

  begin(encoder: GPUCommandEncoder): void {
    encoder
      .beginComputePass({ label: 'bench.timestamps.begin', timestampWrites: { querySet: this.#querySet, beginningOfPassWriteIndex: 0 } })
      .end();
  }

  end(encoder: GPUCommandEncoder): void {
    encoder
      .beginComputePass({ label: 'bench.timestamps.end', timestampWrites: { querySet: this.#querySet, endOfPassWriteIndex: 1 } })
      .end();
    encoder.resolveQuerySet(this.#querySet, 0, 2, this.#resolve, 0);
    encoder.copyBufferToBuffer(this.#resolve, 0, this.#read, 0, 16);
  }

  /** Milliseconds between begin and end of the last submitted span, or null if the values are unusable. */
  async readMs(): Promise<number | null> {
    await this.#read.mapAsync(MAP_MODE_READ);
    const t = new BigUint64Array(this.#read.getMappedRange().slice(0));
    this.#read.unmap();
    const [t0, t1] = [t[0] ?? 0n, t[1] ?? 0n];
    if (t0 === 0n || t1 <= t0) return null;
    return Number(t1 - t0) / 1e6;
  }

  destroy(): void {
    this.#querySet.destroy();
    this.#resolve.destroy();
    this.#read.destroy();
  }
}

/**
 * Records `record` into one encoder between timestamps (when `span` is given), submits once inside
 * a validation scope and waits for the queue. Throws on any validation error.
 * @returns GPU milliseconds of the recorded work, or null without timestamps.
 */
export async function submitTimed(
  device: GPUDevice,
  label: string,
  record: (encoder: GPUCommandEncoder) => void,
  span: TimestampSpan | null,
): Promise<number | null> {
  device.pushErrorScope('validation');
  const encoder = device.createCommandEncoder({ label: `${label}.encoder` });
  span?.begin(encoder);
  record(encoder);
  span?.end(encoder);
  device.queue.submit([encoder.finish({ label: `${label}.commands` })]);
  const error = await device.popErrorScope();
  await device.queue.onSubmittedWorkDone();
  if (error) throw new Error(`${label}: WebGPU validation error: ${error.message}`);
  return span ? span.readMs() : null;
}

/** The two access patterns of copy-floor.wgsl, with their launch shapes. */
export const COPY_VARIANTS = {
  strided: { entryPoint: 'copy_strided', workgroup: 64, items: 16, label: 'grid-stride, 64 lanes x 16 vec4' },
  blocked: { entryPoint: 'copy_blocked', workgroup: 256, items: 16, label: 'blocked, 256 lanes x 16 contiguous vec4' },
} as const;
export type CopyVariant = keyof typeof COPY_VARIANTS;

/** A WGSL vec4 copy (copy-floor.wgsl) bound to one src/dst pair. */
export class CopyFloorKernel {
  readonly variant: CopyVariant;
  readonly #pipeline: GPUComputePipeline;
  readonly #bindGroup: GPUBindGroup;
  readonly #uniform: GPUBuffer;
  readonly #groups: [number, number];

  constructor(device: GPUDevice, src: GPUBuffer, dst: GPUBuffer, floats: number, variant: CopyVariant = 'strided') {
    if (floats % 4 !== 0) throw new Error(`copy-floor needs a multiple of 4 floats, got ${floats}`);
    this.variant = variant;
    const v = COPY_VARIANTS[variant];
    const module = device.createShaderModule({ label: 'bench.copyFloor.module', code: copyFloorSource });
    const layout = device.createBindGroupLayout({
      label: 'bench.copyFloor.layout',
      entries: [
        { binding: 0, visibility: 4, buffer: { type: 'uniform' } },
        { binding: 1, visibility: 4, buffer: { type: 'read-only-storage' } },
        { binding: 2, visibility: 4, buffer: { type: 'storage' } },
      ],
    });
    this.#pipeline = device.createComputePipeline({
      label: `bench.copyFloor.${variant}.pipeline`,
      layout: device.createPipelineLayout({ label: 'bench.copyFloor.pipelineLayout', bindGroupLayouts: [layout] }),
      compute: { module, entryPoint: v.entryPoint, constants: { WORKGROUP: v.workgroup, ITEMS: v.items } },
    });
    const len = floats / 4;
    const groups = Math.max(1, Math.ceil(len / (v.workgroup * v.items)));
    const maxDim = device.limits.maxComputeWorkgroupsPerDimension;
    const gx = Math.min(groups, maxDim);
    const gy = Math.ceil(groups / gx);
    this.#groups = [gx, gy];
    this.#uniform = device.createBuffer({ label: 'bench.copyFloor.params', size: 16, usage: USAGE.UNIFORM | USAGE.COPY_DST });
    device.queue.writeBuffer(this.#uniform, 0, new Uint32Array([len, gx * gy * v.workgroup, gx, 0]));
    this.#bindGroup = device.createBindGroup({
      label: `bench.copyFloor.${variant}.bindGroup`,
      layout,
      entries: [
        { binding: 0, resource: { buffer: this.#uniform } },
        { binding: 1, resource: { buffer: src, offset: 0, size: floats * 4 } },
        { binding: 2, resource: { buffer: dst, offset: 0, size: floats * 4 } },
      ],
    });
  }

  /** Records `k` copies, one compute pass each (as a user's K separate kernels would be). */
  encode(encoder: GPUCommandEncoder, k: number): void {
    for (let i = 0; i < k; i++) {
      const pass = encoder.beginComputePass({ label: `bench.copyFloor.${this.variant}.pass` });
      pass.setPipeline(this.#pipeline);
      pass.setBindGroup(0, this.#bindGroup);
      pass.dispatchWorkgroups(this.#groups[0], this.#groups[1]);
      pass.end();
    }
  }

  destroy(): void {
    this.#uniform.destroy();
  }
}
