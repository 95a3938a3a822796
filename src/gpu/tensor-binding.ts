import { roundUp } from './buffer-pool.js';
import type { Kernel } from './kernel-cache.js';
import type { GpuRuntime } from './runtime.js';
import { packUniforms, type UniformValues } from './uniforms.js';
import type { Tensor } from '../tensor.js';
import { bytesPerElement, storageBytes } from '../dtype.js';

/** A tensor bound as a storage range, plus the element index of its first value in that range. */
export interface TensorBinding {
  readonly resource: GPUBufferBinding;
  /**
   * Offset of element 0 inside the binding, in elements of the tensor's dtype: float32 elements,
   * or 16-bit halves (always even: a tensor starts on a 4-byte word) for float16 / bfloat16.
   */
  readonly base: number;
}

/**
 * Binds a tensor's values. Binding offsets must be multiples of the device's
 * minStorageBufferOffsetAlignment, so an unaligned tensor is bound from the aligned byte below it
 * and the remainder goes to the shader as `base`. The range is rounded up to 16 bytes because
 * kernels view storage as array<vec4f>.
 */
export function bindTensor(device: GPUDevice, t: Tensor): TensorBinding {
  const s = t.storage;
  if (s.kind !== 'gpu') throw new Error(`internal: tensor '${t.label}' is not on the GPU`);
  const { start, end } = bindingRange(device, s.buffer, s.byteOffset, storageBytes(t.size, t.dtype));
  return {
    resource: { buffer: s.buffer, offset: start, size: end - start },
    base: (s.byteOffset - start) / bytesPerElement(t.dtype),
  };
}

/**
 * The bytes [start, end) of `buffer` that binding `bytes` bytes of values at `byteOffset` covers:
 * the offset aligned down to minStorageBufferOffsetAlignment, the size rounded up to 16 bytes.
 */
export function bindingRange(device: GPUDevice, buffer: GPUBuffer, byteOffset: number, bytes: number): { start: number; end: number } {
  const align = device.limits.minStorageBufferOffsetAlignment;
  const start = byteOffset - (byteOffset % align);
  return { start, end: start + Math.min(roundUp(byteOffset - start + Math.max(bytes, 4), 16), buffer.size - start) };
}

/** Binds `t`, or a tiny per-binding dummy when the entry point declares a resource unused this call. */
export function bindOptional(gpu: GpuRuntime, t: Tensor | null, binding: string): TensorBinding {
  if (t) return bindTensor(gpu.device, t);
  return { resource: { buffer: gpu.dummy(binding), offset: 0, size: 16 }, base: 0 };
}

/** The kernel's uniform struct packed from named values, as a content-cached uniform buffer. */
export function bindUniforms<U extends string>(gpu: GpuRuntime, kernel: Kernel<U>, values: UniformValues<U>): GPUBufferBinding {
  const layout = kernel.entry.uniform;
  if (!layout) throw new Error(`internal: ${kernel.key} has no uniform`);
  // With exactOptionalPropertyTypes an optional member is absent, never undefined.
  const packed = packUniforms(layout, values as UniformValues);
  return { buffer: gpu.uniforms.get(`bn.${kernel.entry.shader}.${kernel.entry.entry}.params`, packed) };
}
