import { roundUp } from './buffer-pool.js';
import type { Tensor } from '../tensor.js';

/** A tensor bound as a storage range, plus the element index of its first value in that range. */
export interface TensorBinding {
  readonly resource: GPUBufferBinding;
  /** Offset of element 0 inside the binding, in float32 elements. */
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
  const align = device.limits.minStorageBufferOffsetAlignment;
  const start = s.byteOffset - (s.byteOffset % align);
  const size = Math.min(roundUp(s.byteOffset - start + Math.max(t.size, 1) * 4, 16), s.buffer.size - start);
  return { resource: { buffer: s.buffer, offset: start, size }, base: (s.byteOffset - start) / 4 };
}
