import * as composed from 'virtual:bn-shaders';
import type { ShaderSpec } from './reflect.js';
import { shaderManifest, type ShaderId } from './shader-manifest.js';

export type { ShaderId } from './shader-manifest.js';

// For the static checks of the shaders (test/wgsl-static.test.ts), not the library: every module
// at once defeats the per-shader tree-shaking of src/gpu/shaders.ts.

/** The export name of a shader id in `virtual:bn-shaders` (as build/wgsl-shaders.ts names them). */
function exportName(id: string): string {
  return id.replace(/-(\w)/g, (_m, ch: string) => ch.toUpperCase());
}

/** `backward-reduce` → `backwardReduce`, as a type. */
type CamelCase<S extends string> = S extends `${infer Head}-${infer Tail}` ? `${Head}${Capitalize<CamelCase<Tail>>}` : S;

// Compile-time: src/wgsl.d.ts declares an export for every manifest id, typed with that id (the
// runtime check of the build's exports is in test/wgsl-static.test.ts).
const declared: { readonly [S in ShaderId as CamelCase<S>]: ShaderSpec<S> } = composed;

const specs = declared as unknown as Readonly<Record<string, ShaderSpec | string>>;

/** Every shader module, by id. */
export const shaderSpecs: Readonly<Record<ShaderId, ShaderSpec>> = Object.fromEntries(
  (Object.keys(shaderManifest) as ShaderId[]).map((id) => {
    const spec = specs[exportName(id)];
    if (!spec || typeof spec === 'string') throw new Error(`virtual:bn-shaders has no export for shader '${id}'`);
    return [id, spec];
  }),
) as Record<ShaderId, ShaderSpec>;

/** Every shader module's composed WGSL, by id. */
export const shaderSources: Readonly<Record<ShaderId, string>> = Object.fromEntries(
  Object.entries(shaderSpecs).map(([id, spec]) => [id, spec.code]),
) as Record<ShaderId, string>;

/** The names `virtual:bn-shaders` exports (checked against the manifest). */
export const virtualExports: readonly string[] = Object.keys(composed);
