import type { DType } from './dtype.js';
import { ArgumentError, DestroyedError } from './errors.js';

/**
 * Memory order of a tensor whose logical shape is always (N, C, ...).
 * - `'channels_first'`: (N, C, ...spatial) row-major, PyTorch's contiguous format.
 * - `'channels_last'`: (N, ...spatial, C) row-major, PyTorch's `torch.channels_last(_3d)`.
 */
export type Layout = 'channels_first' | 'channels_last';

/** Shape and layout of a tensor, all that decides how its values sit in memory. */
export interface ShapeAndLayout {
  readonly shape: readonly number[];
  readonly layout: Layout;
}

/**
 * @internal True when `a` and `b` have the same logical shape and the same layout: the one rule
 * for "this tensor stands for that one" (outputs, gradients, residuals, writeFrom sources).
 */
export function sameShapeAndLayout(a: ShapeAndLayout, b: ShapeAndLayout): boolean {
  return a.layout === b.layout && a.shape.length === b.shape.length && a.shape.every((d, i) => d === b.shape[i]);
}

/** Where a tensor's values live. */
export type TensorStorage =
  | { readonly kind: 'cpu'; readonly data: Float32Array }
  /** A float16 / bfloat16 tensor on the CPU: its 16-bit patterns. */
  | { readonly kind: 'cpu-half'; readonly data: Uint16Array }
  | {
      readonly kind: 'gpu';
      readonly buffer: GPUBuffer;
      /** Byte offset of element 0 inside `buffer`; a multiple of 4. */
      readonly byteOffset: number;
      /** True when the library allocated the buffer and `destroy()` may recycle it. */
      readonly owned: boolean;
    };

/** What a tensor needs from the context that made it; keeps tensor.ts free of context imports. */
export interface TensorOwner {
  /** @internal */
  readonly id: number;
  /** @internal */
  readTensor(tensor: Tensor): Promise<Float32Array>;
  /** @internal */
  readTensorBits(tensor: Tensor): Promise<Uint16Array>;
  /** @internal */
  writeTensor(tensor: Tensor, data: unknown): void;
  /** @internal */
  copyTensor(dst: Tensor, src: Tensor): void;
  /** @internal */
  releaseTensor(tensor: Tensor): void;
}

/** @internal A tensor's write tracking at one moment (see {@link Tensor.noteWriteRolledBack}). */
export interface TensorWriteState {
  readonly submit: number;
  readonly failure: Error | null;
}

/**
 * What {@link Tensor.read} gives for a tensor of dtype `D`: a Float32Array of the values for
 * float32, a Uint16Array of the stored 16-bit patterns for float16 / bfloat16 (wrap its buffer in a
 * `Float16Array` where the runtime has one).
 */
export type TensorValues<D extends DType = DType> = D extends 'float32' ? Float32Array : Uint16Array;

/**
 * A tensor on one context's backend. Shapes are logical (N, C, ...); `layout` says how the values
 * are ordered in memory, `dtype` how each is stored (float32, or float16 / bfloat16 bit patterns).
 * Create tensors with `ctx.tensor(...)` or `ctx.tensorFromBuffer(...)`.
 */
export class Tensor<D extends DType = DType> {
  readonly shape: readonly number[];
  readonly layout: Layout;
  /** Element type of the storage; `'float32'` unless the tensor was made with another `dtype`. */
  readonly dtype: D;
  /** Number of elements. */
  readonly size: number;
  /** @internal */
  readonly owner: TensorOwner;
  #storage: TensorStorage | null;
  #label: string;
  /** Sequence number of the last library submit that writes this tensor (0: none pending). */
  #lastWriteSubmit = 0;
  /** The error of the failed submit that last wrote this tensor; read() rejects with it. */
  #writeFailure: Error | null = null;

  /** @internal use `ctx.tensor` */
  constructor(
    owner: TensorOwner,
    shape: readonly number[],
    layout: Layout,
    storage: TensorStorage,
    label: string,
    // The default stands for `D` = 'float32', which every caller that omits it means.
    dtype: D = 'float32' as D,
  ) {
    this.owner = owner;
    this.shape = Object.freeze([...shape]);
    this.layout = layout;
    this.dtype = dtype;
    this.size = shape.reduce((a, b) => a * b, 1);
    this.#storage = storage;
    this.#label = label;
  }

  /** A short name used in error messages, e.g. `'input'` or `'bn.running_mean'`. */
  get label(): string {
    return this.#label;
  }

  /** True once `destroy()` was called. */
  get destroyed(): boolean {
    return this.#storage === null;
  }

  /** @internal the backing storage; throws if the tensor was destroyed. */
  get storage(): TensorStorage {
    if (this.#storage === null) {
      throw new DestroyedError(`tensor '${this.#label}' was used after destroy()`);
    }
    return this.#storage;
  }

  /**
   * The GPU buffer behind this tensor, for zero-copy use with your own WebGPU code. Throws
   * `ArgumentError` for a tensor of the CPU backend (its values live in a Float32Array) and
   * `DestroyedError` after `destroy()`. A buffer the library allocated comes from its pool in size
   * classes, so it can be larger than the tensor (by up to 1/16, at least to 16 bytes): bind
   * `size * 4` bytes (`size * 2` for float16 / bfloat16) from {@link Tensor.byteOffset}, not the
   * whole buffer.
   */
  get buffer(): GPUBuffer {
    const s = this.storage;
    if (s.kind !== 'gpu') {
      throw new ArgumentError(
        `tensor '${this.#label}'.buffer: expected a tensor of the 'webgpu' backend, got one of the 'cpu' backend, which has no GPUBuffer (use read())`,
      );
    }
    return s.buffer;
  }

  /** Byte offset of element 0 inside {@link Tensor.buffer}. */
  get byteOffset(): number {
    const s = this.storage;
    return s.kind === 'gpu' ? s.byteOffset : 0;
  }

  /**
   * @internal A library submit (sequence number `submit`, or 0 for work recorded into a caller's
   * encoder or written directly) writes this tensor: its values are those of that write from now on.
   */
  noteWrite(submit: number): void {
    this.#lastWriteSubmit = submit;
    this.#writeFailure = null;
  }

  /** @internal Submit `submit` failed; if it is still the last write of this tensor, reads reject. */
  noteWriteFailed(submit: number, error: Error): void {
    if (this.#lastWriteSubmit === submit) this.#writeFailure = error;
  }

  /** @internal What {@link noteWriteRolledBack} restores: the last write before an in-place update. */
  get writeState(): TensorWriteState {
    return { submit: this.#lastWriteSubmit, failure: this.#writeFailure };
  }

  /**
   * @internal Submit `submit`, which was to update this tensor in place (running statistics),
   * failed. WebGPU executes nothing of a submit that failed validation or allocation, so the
   * tensor still holds the values of its earlier write: that write's state returns, instead of
   * poisoning state the failed step never touched.
   */
  noteWriteRolledBack(submit: number, before: TensorWriteState): void {
    if (this.#lastWriteSubmit !== submit) return;
    this.#lastWriteSubmit = before.submit;
    this.#writeFailure = before.failure;
  }

  /** @internal The error of the failed submit whose output this tensor holds, or null. */
  get writeFailure(): Error | null {
    return this.#writeFailure;
  }

  /**
   * Copies the stored values back in this tensor's memory layout, in its dtype: a Float32Array
   * for float32, a Uint16Array of the 16-bit patterns for float16 / bfloat16 (wrap its buffer in
   * a `Float16Array` where the runtime has one); {@link readFloat32} widens them instead. Rejects
   * with `GPUOperationError` if the library submit that last wrote it failed, every time, until a
   * later write succeeds: a failed submit never reads back as stale values or zeros.
   */
  async read(): Promise<TensorValues<D>> {
    this.storage;
    const values = this.dtype === 'float32' ? this.owner.readTensor(this) : this.owner.readTensorBits(this);
    // The branch above is the type's own condition, which TS cannot follow through a generic.
    return values as Promise<TensorValues<D>>;
  }

  /**
   * The values as a new Float32Array in memory order, whatever the dtype: float16 and bfloat16
   * widen exactly (both are subsets of float32). For a float32 tensor the same as {@link read}.
   * Rejects like {@link read}.
   */
  async readFloat32(): Promise<Float32Array> {
    this.storage;
    return this.owner.readTensor(this);
  }

  /**
   * A float16 or bfloat16 tensor's stored 16-bit patterns as a new Uint16Array in memory order
   * (what {@link read} gives for them). Rejects with `ArgumentError` for a float32 tensor, and
   * like {@link read} after a failed write.
   */
  async readBits(): Promise<Uint16Array> {
    this.storage;
    return this.owner.readTensorBits(this);
  }

  /**
   * Overwrites the values in place (same memory order as `ctx.tensor`), e.g. for an optimizer step
   * or to reuse an input tensor every batch. Takes what `ctx.tensor` takes for this tensor's dtype
   * (any non-BigInt typed array or array-like of numbers, converted to float32; for a float16 /
   * bfloat16 tensor a Uint16Array is taken as bit patterns), exactly `size` values. On WebGPU it is
   * a `queue.writeBuffer`: every command buffer submitted after this call sees the new values,
   * including a caller's encoder recorded earlier but submitted later. Needs COPY_DST usage on a
   * caller's buffer.
   * @throws ArgumentError / ShapeError before anything is written.
   */
  write(data: ArrayLike<number>): void {
    this.storage;
    this.owner.writeTensor(this, data);
  }

  /**
   * Copies `source` (a tensor of the same context, shape, layout and dtype) into this tensor: on WebGPU
   * one `copyBufferToBuffer` submit, with no readback. If that submit fails, or `source` holds a
   * failed submit's output, this tensor's reads reject.
   * @throws ShapeError / ArgumentError / ContextMismatchError before anything is copied.
   */
  writeFrom(source: Tensor): void {
    this.storage;
    this.owner.copyTensor(this, source);
  }

  /** Frees (or recycles) the storage. Idempotent. Buffers handed in by the caller are never destroyed. */
  destroy(): void {
    if (this.#storage === null) return;
    this.owner.releaseTensor(this);
    this.#storage = null;
  }
}

/** Number of elements of a shape. */
export function shapeSize(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}
