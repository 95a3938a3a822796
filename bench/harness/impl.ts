/**
 * What every benchmarked implementation looks like to the harness: check once, then run K
 * iterations to completion as often as asked.
 */
import type { CaseData } from './data.js';
import type { SharedGpu, TimestampSpan } from './gpu.js';
import type { ImplName, LayoutName, LibraryModule, OpName } from './types.js';

export interface Impl {
  readonly impl: ImplName;
  readonly op: OpName;
  /** `gpu` work is K iterations in one submit; `cpu` work is K synchronous iterations. */
  readonly kind: 'gpu' | 'cpu';
  /** How it ran, for the row's `note`. */
  readonly note?: string;
  /**
   * Runs one iteration into outputs poisoned with NaN (where the output is ours to poison), reads
   * them back and returns max |out − ref| / max(1, max |ref|) over every output.
   */
  verify(): Promise<number>;
  /** Called before every timed `run`, outside the timed region (e.g. switching tfjs backends). */
  prepare?(): Promise<void>;
  /**
   * Runs `k` iterations and waits until they are done (GPU: one submit, then the queue drained).
   * @returns GPU milliseconds of all k iterations from timestamps, or null when not measured.
   */
  run(k: number): Promise<number | null>;
  dispose(): void;
}

/** An implementation × op that could not be set up here, with the reason. */
export interface Unavailable {
  readonly impl: ImplName;
  readonly op: OpName;
  readonly reason: string;
}

/** The implementations one factory made for a case, and the cleanup of what they share. */
export interface ImplSet {
  readonly items: ReadonlyArray<Impl | Unavailable>;
  /** Frees what the items share; the harness calls each item's own dispose first. */
  dispose(): void;
}

/** A set whose every op is unavailable for the same reason. */
export function unavailableSet(impl: ImplName, ops: readonly OpName[], reason: string): ImplSet {
  return { items: ops.map((op) => ({ impl, op, reason })), dispose: () => {} };
}

export function isImpl(item: Impl | Unavailable): item is Impl {
  return 'run' in item;
}

/** What a case gives every implementation. */
export interface CaseContext {
  readonly shape: readonly number[];
  readonly layout: LayoutName;
  readonly data: CaseData;
  readonly lib: LibraryModule;
  /** The shared device, or null when WebGPU is unavailable. */
  readonly gpu: SharedGpu | null;
  readonly span: TimestampSpan | null;
  /** x and dy on the shared device (read-only for everyone). */
  readonly xBuffer: GPUBuffer | null;
  readonly dyBuffer: GPUBuffer | null;
}

export function describeError(err: unknown): string {
  if (err instanceof Error) return `${err.name}: ${err.message}`;
  return String(err);
}
