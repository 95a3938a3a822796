import { FLAG_PRELU_SHARED, PLANE_PRELU_SLOPE, planeStride } from '../../gpu/contracts.js';
import type { ResolvedEpilogue } from '../epilogue.js';

// A PReLU epilogue's slope reaches the kernels through channelStats plane PLANE_PRELU_SLOPE, filled
// by a buffer copy from the weight tensor: normalize and backward-elementwise already bind WebGPU's
// default maximum of 8 storage buffers per stage, so the slope cannot have a binding of its own.

/**
 * Records the copy of a PReLU weight into `channelStats` (nothing for other epilogues). Outside any
 * pass: call it before the pass whose kernels read the slope.
 */
export function encodePreluSlope(encoder: GPUCommandEncoder, e: ResolvedEpilogue | null, channelStats: GPUBuffer, channels: number): void {
  const w = e?.activation.weight;
  if (!w) return;
  encoder.copyBufferToBuffer(w.buffer, w.byteOffset, channelStats, PLANE_PRELU_SLOPE * planeStride(channels) * 16, w.size * 4);
}

/** The `flags` bits a kernel applying `e` needs: FLAG_PRELU_SHARED for a PReLU weight of shape [1]. */
export function preluFlags(e: ResolvedEpilogue | null): number {
  const w = e?.activation.weight;
  return w && w.size === 1 ? FLAG_PRELU_SHARED : 0;
}
