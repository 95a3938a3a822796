import { WebGPUUnavailableError } from '../errors.js';
import { optionalFeatures } from './features.js';

let nodeGpu: Promise<GPU | null> | null = null;

async function loadNodeGpu(): Promise<GPU | null> {
  // A variable specifier keeps bundlers from pulling Dawn's native addon into browser builds.
  const specifier = 'webgpu';
  try {
    const mod = (await import(/* @vite-ignore */ specifier)) as {
      create: (flags: string[]) => GPU;
      globals: Record<string, unknown>;
    };
    for (const [name, value] of Object.entries(mod.globals)) {
      if (!(name in globalThis)) Object.defineProperty(globalThis, name, { value, configurable: true, writable: true });
    }
    return mod.create([]);
  } catch {
    return null;
  }
}

function isNode(): boolean {
  const p = (globalThis as { process?: { versions?: { node?: string } } }).process;
  return typeof p?.versions?.node === 'string';
}

/** `navigator.gpu` in a browser or worker; Dawn's Node bindings (the `webgpu` package) in Node. */
export async function findGpu(): Promise<GPU | null> {
  const nav = (globalThis as { navigator?: { gpu?: GPU } }).navigator;
  if (nav?.gpu) return nav.gpu;
  if (!isNode()) return null;
  nodeGpu ??= loadNodeGpu();
  return nodeGpu;
}

/** Options for {@link requestBatchNormDevice}. */
export interface DeviceRequest {
  powerPreference?: GPUPowerPreference;
}

/** The adapter and device the library creates for itself. */
export interface AcquiredDevice {
  readonly device: GPUDevice;
  readonly adapterInfo: GPUAdapterInfo | null;
}

/**
 * Requests an adapter and a device with the adapter's own buffer-size limits (the defaults cap
 * storage bindings at 128 MiB, far below what real tensors need) and `timestamp-query` and
 * `shader-f16` when the adapter has them. Throws {@link WebGPUUnavailableError} saying why when there is none.
 */
export async function requestBatchNormDevice(request: DeviceRequest = {}): Promise<AcquiredDevice> {
  const gpu = await findGpu();
  if (!gpu) {
    throw new WebGPUUnavailableError(
      isNode()
        ? "backend 'webgpu': no WebGPU in this Node process (install the 'webgpu' package; on a machine without a GPU point VK_ICD_FILENAMES at a Vulkan ICD such as SwiftShader's)"
        : "backend 'webgpu': navigator.gpu is missing (WebGPU needs a secure context and a browser that supports it)",
    );
  }
  const options: GPURequestAdapterOptions = {};
  if (request.powerPreference) options.powerPreference = request.powerPreference;
  const adapter = await gpu.requestAdapter(options);
  if (!adapter) {
    throw new WebGPUUnavailableError(
      "backend 'webgpu': requestAdapter() returned null (no usable GPU or software adapter; in Node set VK_ICD_FILENAMES to a Vulkan ICD such as /usr/lib/chromium/vk_swiftshader_icd.json)",
    );
  }
  const requiredFeatures = optionalFeatures(adapter.features);
  const device = await adapter.requestDevice({
    label: 'bn.device',
    requiredFeatures,
    requiredLimits: {
      maxBufferSize: adapter.limits.maxBufferSize,
      maxStorageBufferBindingSize: adapter.limits.maxStorageBufferBindingSize,
    },
  });
  return { device, adapterInfo: adapter.info ?? null };
}
