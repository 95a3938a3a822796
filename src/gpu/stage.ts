import { getKernel, type Kernel, type OverrideConstants } from './kernel-cache.js';
import type { ShaderSpec } from './reflect.js';
import type { ShaderId } from './shader-manifest.js';
import type { ShaderInterfaces } from './shader-types.js';

// Stage descriptors: one per shader module (src/batch-norm/kernels/stages/), pairing the module
// with the names its dispatchers may use. The names are literal types generated from the
// build-time reflection (shader-types.ts), so an entry point, override or uniform member that the
// WGSL does not declare is a tsc error at the call site rather than a runtime throw in getKernel.

/** The compute entry points of shader `S`. */
export type EntryOf<S extends ShaderId> = keyof ShaderInterfaces[S]['entries'] & string;

/** The overrides the host may set on shader `S` (getKernel always sets `WORKGROUP_SIZE` itself). */
export type OverrideOf<S extends ShaderId> = Exclude<ShaderInterfaces[S]['overrides'], 'WORKGROUP_SIZE'>;

/** The members of entry point `E`'s uniform struct (padding left out); of each, for a union `E`. */
export type UniformOf<S extends ShaderId, E extends string> = E extends EntryOf<S> ? ShaderInterfaces[S]['entries'][E] & string : never;

/** Override values for shader `S`, by WGSL `override` name (none at all where it declares none). */
export type StageOverrides<S extends ShaderId> = [OverrideOf<S>] extends [never]
  ? { readonly [name: string]: never }
  : { readonly [K in OverrideOf<S>]?: number };

/** How an elementwise or reduction kernel walks its tensor: channels-first segments or channels-last rows. */
export type AccessOrder = 'cf' | 'cl';

/** Floats per element a kernel variant loads: scalars, or vec4s. */
export type VectorWidth = 1 | 4;

type VariantCandidate<S extends ShaderId> =
  EntryOf<S> extends infer K ? (K extends `${infer Stem}_${AccessOrder}${VectorWidth}` ? Stem : never) : never;

/** The entry stems of shader `S` that have all four variants `${stem}_cf1`, `_cf4`, `_cl1`, `_cl4`. */
export type VariantStem<S extends ShaderId> = {
  [T in VariantCandidate<S>]: `${T}_${AccessOrder}${VectorWidth}` extends EntryOf<S> ? T : never;
}[VariantCandidate<S>];

/** The stage's compiled entry point, typed with the members of its uniform struct. */
export type StageKernel<S extends ShaderId, E extends string> = Kernel<UniformOf<S, E>>;

/** One shader module and the typed ways to get its pipelines. */
export interface Stage<S extends ShaderId> {
  /** The composed WGSL and its reflection. */
  readonly shader: ShaderSpec<S>;
  /** The pipeline of entry point `entry`, specialised by `overrides` (cached per device). */
  kernel<E extends EntryOf<S>>(device: GPUDevice, entry: E, overrides?: StageOverrides<S>): StageKernel<S, E>;
  /** The pipeline of entry point `${stem}_${order}${width}` (e.g. `stats_cf4`), specialised by `overrides`. */
  variant<T extends VariantStem<S>>(
    device: GPUDevice,
    stem: T,
    order: AccessOrder,
    width: VectorWidth,
    overrides?: StageOverrides<S>,
  ): StageKernel<S, `${T}_${AccessOrder}${VectorWidth}`>;
}

/**
 * The descriptor of shader module `shader`. Pure: a stage that no dispatcher imports, and its
 * WGSL with it, is dropped by a bundler.
 */
export function defineStage<S extends ShaderId>(shader: ShaderSpec<S>): Stage<S> {
  // With exactOptionalPropertyTypes an optional override is absent, never undefined, so the typed
  // overrides are plain override constants.
  const get = (device: GPUDevice, entry: string, overrides: StageOverrides<S>): Kernel =>
    getKernel(device, shader, entry, overrides as OverrideConstants);
  return {
    shader,
    kernel: (device, entry, overrides = {}) => get(device, entry, overrides),
    variant: (device, stem, order, width, overrides = {}) => get(device, `${stem}_${order}${width}`, overrides),
  };
}
