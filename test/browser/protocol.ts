/**
 * What test/browser.test.ts (Node) and test/browser/entry.ts (the page) exchange. The test serves a
 * {@link BrowserPlan} at `/plan.json`; the page runs it on the built library and leaves a
 * {@link BrowserReport} in `window.__result`. Types only: nothing here exists at runtime.
 */
import type { Layout } from '../../src/index.js';

/** One forward call of a module, with the input already in `layout` memory order. */
export interface PlannedStep {
  readonly training: boolean;
  /** Logical shape (N, C, ...). */
  readonly shape: number[];
  readonly layout: Layout;
  /** float32 values in `layout` memory order. */
  readonly input: number[];
}

/** A module built once and driven through its steps; state carries over between steps. */
export interface PlannedCase {
  /** `<fixture name> [<layout>]`. */
  readonly id: string;
  readonly module: 'BatchNorm1d' | 'BatchNorm2d' | 'BatchNorm3d';
  readonly numFeatures: number;
  readonly eps: number;
  readonly momentum: number | null;
  readonly affine: boolean;
  readonly trackRunningStats: boolean;
  /** A complete state dict to load before the first step, or null to keep the defaults. */
  readonly stateDict: {
    weight?: number[];
    bias?: number[];
    running_mean?: number[];
    running_var?: number[];
    num_batches_tracked?: number;
  } | null;
  readonly steps: PlannedStep[];
}

export interface BrowserPlan {
  readonly cases: PlannedCase[];
}

/** What one step produced: the output in the step's memory order, and the state after it. */
export interface StepResult {
  readonly output: number[];
  readonly runningMean: number[] | null;
  readonly runningVar: number[] | null;
  readonly numBatchesTracked: number | null;
}

export interface CaseResult {
  readonly id: string;
  readonly steps: StepResult[];
  /** The error a step or `ctx.sync()` threw (name: message), or null. */
  readonly error: string | null;
}

export interface BrowserReport {
  /** `ctx.backend` as the library reported it; anything but 'webgpu' fails the test. */
  readonly backend: string;
  readonly adapter: { vendor: string; architecture: string; device: string; description: string; isFallbackAdapter: boolean | null } | null;
  readonly userAgent: string;
  readonly cases: CaseResult[];
  /** Uncaptured GPU errors, errors caught by the page's own error scopes, page-level exceptions. */
  readonly gpuErrors: string[];
  /** Set when the page could not run the plan at all. */
  readonly fatal: string | null;
  readonly elapsedMs: number;
}

declare global {
  interface Window {
    /** Set by the page once it has finished (or failed). */
    __result?: BrowserReport;
  }
}
