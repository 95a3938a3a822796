import { WORKGROUP_SIZE } from './contracts.js';
import type { Kernel } from './kernel-cache.js';
import type { GpuRuntime } from './runtime.js';
import { bindUniforms } from './tensor-binding.js';
import type { UniformValues } from './uniforms.js';

/**
 * Splits a 1-D workgroup count over x and y so neither exceeds the device limit (the WGSL
 * prelude's `invocation` folds it back).
 */
export function grid(workgroups: number, maxPerDimension: number): [number, number] {
  const x = Math.max(1, Math.min(workgroups, maxPerDimension));
  return [x, Math.ceil(workgroups / x)];
}

/**
 * Records one dispatch of a per-channel stage (one invocation per channel, indexed by the
 * prelude's `invocation`) into `pass`: its uniform struct `params` packed from `uniforms`, the
 * other bindings from `resources`. The per-channel stages of finalize, backward prepare and
 * SyncBatchNorm all dispatch this way, so the grid and binding rules live here once.
 */
export function dispatchPerChannel<U extends string>(
  gpu: GpuRuntime,
  pass: GPUComputePassEncoder,
  kernel: Kernel<U>,
  channels: number,
  uniforms: UniformValues<U>,
  resources: Readonly<Record<string, GPUBufferBinding>>,
): void {
  pass.setPipeline(kernel.pipeline);
  pass.setBindGroup(0, gpu.bindGroups.get(kernel, { params: bindUniforms(gpu, kernel, uniforms), ...resources }));
  pass.dispatchWorkgroups(...grid(Math.ceil(channels / WORKGROUP_SIZE), gpu.device.limits.maxComputeWorkgroupsPerDimension));
}

/** {@link dispatchPerChannel} in a compute pass of its own, labelled `label`. */
export function encodePerChannel<U extends string>(
  gpu: GpuRuntime,
  encoder: GPUCommandEncoder,
  label: string,
  kernel: Kernel<U>,
  channels: number,
  uniforms: UniformValues<U>,
  resources: Readonly<Record<string, GPUBufferBinding>>,
): void {
  const pass = encoder.beginComputePass({ label });
  dispatchPerChannel(gpu, pass, kernel, channels, uniforms, resources);
  pass.end();
}
