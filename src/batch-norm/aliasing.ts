import type { BatchNormContext } from '../context.js';
import { ArgumentError } from '../errors.js';
import { bindingRange } from '../gpu/tensor-binding.js';
import type { Tensor } from '../tensor.js';
import { storageBytes } from '../dtype.js';

/** A named tensor argument of one call; null when the call does not use it. */
export type NamedTensor = readonly [name: string, tensor: Tensor | null];

interface Span {
  readonly name: string;
  readonly tensor: Tensor;
  /** The memory object: a GPUBuffer, or a CPU tensor's Float32Array. */
  readonly memory: object;
  /** Bytes the kernels bind: aligned down and rounded up as `bindTensor` does. */
  readonly start: number;
  readonly end: number;
}

function spanOf(ctx: BatchNormContext, name: string, t: Tensor): Span {
  const s = t.storage;
  if (s.kind === 'gpu' && ctx.device)
    return { name, tensor: t, memory: s.buffer, ...bindingRange(ctx.device, s.buffer, s.byteOffset, storageBytes(t.size, t.dtype)) };
  return { name, tensor: t, memory: s.kind === 'gpu' ? s.buffer : s.data, start: 0, end: storageBytes(t.size, t.dtype) };
}

function describeSpan(s: Span): string {
  const where =
    s.tensor.storage.kind === 'gpu' ? `bytes [${s.start}, ${s.end}) of GPUBuffer '${(s.memory as GPUBuffer).label}'` : 'the same array';
  return `${s.name} (tensor '${s.tensor.label}', ${where})`;
}

/**
 * Rejects every way a call's outputs can share memory with its inputs or with each other, before
 * any GPU work: WebGPU forbids a buffer bound read-only and writable in one dispatch (even at
 * disjoint offsets) and writable bindings that alias. Outputs in one buffer are fine when their
 * bindings (offsets aligned down to minStorageBufferOffsetAlignment) do not overlap.
 * @throws ArgumentError naming both tensors.
 */
export function checkNoAliasing(ctx: BatchNormContext, who: string, reads: readonly NamedTensor[], writes: readonly NamedTensor[]): void {
  const inputs: Span[] = [];
  for (const [name, t] of reads) if (t) inputs.push(spanOf(ctx, name, t));
  const outputs: Span[] = [];
  for (const [name, t] of writes) {
    if (!t) continue;
    const out = spanOf(ctx, name, t);
    const read = inputs.find((i) => i.memory === out.memory);
    if (read) {
      throw new ArgumentError(
        `${who}: ${describeSpan(out)} shares memory with ${describeSpan(read)}; an output must not be in the same buffer as an input (WebGPU forbids reading and writing one buffer in one dispatch): give it a separate buffer`,
      );
    }
    const other = outputs.find((o) => o.memory === out.memory && o.start < out.end && out.start < o.end);
    if (other) {
      const align = ctx.device?.limits.minStorageBufferOffsetAlignment ?? 1;
      throw new ArgumentError(
        `${who}: ${describeSpan(out)} overlaps ${describeSpan(other)} as bound; outputs in one buffer must start in different ${align}-byte blocks (minStorageBufferOffsetAlignment) and not overlap`,
      );
    }
    outputs.push(out);
  }
}

/** True when `value` looks like a GPUCommandEncoder (WebGPU has no class to test across realms). */
export function isCommandEncoder(value: unknown): value is GPUCommandEncoder {
  if (value === null || typeof value !== 'object') return false;
  const e = value as { beginComputePass?: unknown; finish?: unknown };
  return typeof e.beginComputePass === 'function' && typeof e.finish === 'function';
}

/** Throws ArgumentError unless `encoder` is a GPUCommandEncoder. */
export function checkEncoder(encoder: unknown, who: string): asserts encoder is GPUCommandEncoder {
  if (!isCommandEncoder(encoder)) {
    throw new ArgumentError(
      `${who}: encoder must be a GPUCommandEncoder (device.createCommandEncoder()), got ${encoder === null ? 'null' : typeof encoder}`,
    );
  }
}
