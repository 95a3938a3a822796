import { shaderSources as composedSources, wgslPrelude as prelude } from 'virtual:bn-shaders';
import type { ShaderId } from './shader-manifest.js';

export type { ShaderId } from './shader-manifest.js';

/**
 * Every WGSL module of the library, by id, composed from the `.wgsl` files that
 * `shader-manifest.ts` lists. The files are the single source: the `virtual:bn-shaders` module
 * (build/wgsl-shaders.ts) inlines them at build time, in the library build and in vitest alike.
 */
export const shaderSources: Readonly<Record<ShaderId, string>> = composedSources;

/** The shared WGSL prelude alone, for the check that it agrees with `contracts.ts`. */
export const wgslPrelude: string = prelude;
