import type { GPUOperationError } from '../errors.js';
import type { Tensor } from '../tensor.js';
import type { GpuRuntime } from './runtime.js';

// The one submit protocol of every GPU op (forward, backward, the ONNX operator, fold, SyncBatchNorm's
// partials and steps, tensor copies): record into the caller's encoder or submit once, mark what
// the op writes, and on a failed submit make its outputs reject on read() while tensors it was to
// update in place keep their last good state (WebGPU executes nothing of a failed submit).

/** What one op writes. */
export interface OpWrites {
  /** Tensors the op writes whole: after a failed submit their reads reject with its error. */
  readonly outputs?: ReadonlyArray<Tensor | null>;
  /** Tensors the op updates in place (running statistics): after a failed submit, as before it. */
  readonly inPlace?: ReadonlyArray<Tensor | null>;
}

/** How one op runs. */
export interface OpRun {
  /** Record into this caller's encoder instead of submitting (the caller submits it). */
  readonly encoder?: GPUCommandEncoder | undefined;
  /** Undoes the caller's own state (a step counter, a saved record) after a failed submit. */
  readonly onFailure?: (() => void) | undefined;
}

/** A submitted op: whether its submit failed (known once the runtime's error scopes settle). */
export interface OpHandle {
  /** The submit's sequence number; 0 when recorded into a caller's encoder. */
  readonly submit: number;
  /** Throws the submit's error if it failed; call after `gpu.errorsSettled()` (readFloats awaits it). */
  throwIfFailed(): void;
}

/**
 * Runs one GPU op under the library's submit protocol (see the file comment). Everything the op
 * writes must be in `writes`, so no failure ever reads back as zeros or stale values.
 */
export function runGpuOp(
  gpu: GpuRuntime,
  label: string,
  writes: OpWrites,
  record: (encoder: GPUCommandEncoder) => void,
  run: OpRun = {},
): OpHandle {
  const outputs = writes.outputs ?? [];
  const inPlace = writes.inPlace ?? [];
  if (run.encoder) {
    gpu.recordInto(run.encoder, record);
    noteWrites([...outputs, ...inPlace], 0);
    return { submit: 0, throwIfFailed: () => {} };
  }
  const before = inPlace.map((t) => t?.writeState ?? null);
  let failure: GPUOperationError | null = null;
  const submit = gpu.submit(label, record, (error) => {
    failure = error;
    for (const t of outputs) t?.noteWriteFailed(submit, error);
    inPlace.forEach((t, i) => {
      const state = before[i];
      if (t && state) t.noteWriteRolledBack(submit, state);
    });
    run.onFailure?.();
  });
  noteWrites([...outputs, ...inPlace], submit);
  return {
    submit,
    throwIfFailed: () => {
      if (failure) throw failure;
    },
  };
}

/** Marks `tensors` as written by library submit `submit` (0: caller-recorded or a direct write). */
export function noteWrites(tensors: ReadonlyArray<Tensor | null>, submit: number): void {
  for (const t of tensors) t?.noteWrite(submit);
}
