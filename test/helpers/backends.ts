/**
 * Shared test plumbing: contexts for both backends (WebGPU must really be WebGPU), layout
 * conversion, per-quantity tolerances, and a per-backend case counter that every suite prints.
 */
import { afterAll } from 'vitest';
import { createContext, type BatchNormContext, type Layout } from '../../src/index.js';

export const BACKENDS = ['webgpu', 'cpu'] as const;
export type Backend = (typeof BACKENDS)[number];

/**
 * A context on exactly `backend`. For WebGPU this is Dawn + SwiftShader in Node; if no adapter
 * exists the test fails here instead of silently running on the CPU.
 */
export async function contextFor(backend: Backend): Promise<BatchNormContext> {
  const ctx = await createContext({ backend });
  if (ctx.backend !== backend) throw new Error(`asked for ${backend}, got ${ctx.backend}`);
  return ctx;
}

/** Counts cases per backend and prints one line per suite, so CI logs show both backends ran. */
export function caseCounter(suite: string): (backend: Backend) => void {
  const counts: Record<Backend, number> = { webgpu: 0, cpu: 0 };
  afterAll(() => {
    console.log(`[cases] ${suite}: webgpu=${counts.webgpu} cpu=${counts.cpu}`);
  });
  return (backend) => {
    counts[backend]++;
  };
}

/** Logical (N, C, ...) row-major values → memory order of `layout`. */
export function toLayout(logical: ArrayLike<number>, shape: readonly number[], layout: Layout): Float32Array {
  const out = new Float32Array(logical.length);
  if (layout === 'channels_first' || shape.length < 3) {
    out.set(Array.from(logical));
    return out;
  }
  const [n = 0, c = 0] = shape;
  const s = logical.length / Math.max(1, n * c);
  for (let i = 0; i < n; i++)
    for (let ch = 0; ch < c; ch++) for (let k = 0; k < s; k++) out[(i * s + k) * c + ch] = logical[(i * c + ch) * s + k] as number;
  return out;
}

/** Memory order of `layout` → logical (N, C, ...) row-major values. */
export function fromLayout(memory: ArrayLike<number>, shape: readonly number[], layout: Layout): Float64Array {
  const out = new Float64Array(memory.length);
  if (layout === 'channels_first' || shape.length < 3) {
    for (let i = 0; i < memory.length; i++) out[i] = memory[i] as number;
    return out;
  }
  const [n = 0, c = 0] = shape;
  const s = memory.length / Math.max(1, n * c);
  for (let i = 0; i < n; i++)
    for (let ch = 0; ch < c; ch++) for (let k = 0; k < s; k++) out[(i * c + ch) * s + k] = memory[(i * s + k) * c + ch] as number;
  return out;
}

/** Channel of logical index `i` in shape (N, C, ...). */
export function channelOf(i: number, shape: readonly number[]): number {
  const c = shape[1] ?? 1;
  let s = 1;
  for (let d = 2; d < shape.length; d++) s *= shape[d] ?? 1;
  return Math.floor(i / s) % c;
}

/** Largest |a − b| and where it is. */
export function maxAbsError(actual: ArrayLike<number>, expected: ArrayLike<number>): { err: number; at: number } {
  let err = 0;
  let at = -1;
  for (let i = 0; i < expected.length; i++) {
    const e = Math.abs((actual[i] as number) - (expected[i] as number));
    if (!(e <= err)) {
      err = Number.isNaN(e) ? Infinity : e;
      at = i;
    }
  }
  return { err, at };
}

/**
 * Checks every element against `tol(i)`, returning a readable failure (or null) and the max error.
 * NaN never passes unless the reference is NaN at the same place.
 */
export function checkClose(
  what: string,
  actual: ArrayLike<number>,
  expected: ArrayLike<number>,
  tol: (i: number) => number,
): { failure: string | null; maxErr: number } {
  let maxErr = 0;
  if (actual.length !== expected.length) return { failure: `${what}: length ${actual.length} vs ${expected.length}`, maxErr: Infinity };
  for (let i = 0; i < expected.length; i++) {
    const a = actual[i] as number;
    const e = expected[i] as number;
    if (Number.isNaN(e) && Number.isNaN(a)) continue;
    const err = Math.abs(a - e);
    if (!(err <= tol(i))) return { failure: `${what}[${i}]: got ${a}, expected ${e} (|err| ${err} > tol ${tol(i)})`, maxErr: Infinity };
    if (err > maxErr) maxErr = err;
  }
  return { failure: null, maxErr };
}

/** Deterministic PRNG (mulberry32) so random configurations are reproducible from a seed. */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Standard normal sample from a uniform source (Box–Muller). */
export function gaussian(next: () => number): number {
  const u = Math.max(next(), 1e-12);
  return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * next());
}
