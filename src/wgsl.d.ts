// Vite (and vitest) load `.wgsl?raw` imports as strings (the benchmark harness and examples use them).
declare module '*.wgsl?raw' {
  const source: string;
  export default source;
}

// The library's shaders, composed and reflected at build time by build/wgsl-shaders.ts (a Vite
// plugin used by the library build, vitest and the benchmark page): one export per `ShaderId`
// (src/gpu/shader-manifest.ts), camelCased, so a bundler keeps only the shaders an app uses.
// test/wgsl-static.test.ts checks that these names are exactly the manifest's.
// Each is typed with its literal id, so a stage descriptor (src/gpu/stage.ts) knows its entry
// points, overrides and uniform members (src/gpu/shader-types.ts, generated from the reflection).
declare module 'virtual:bn-shaders' {
  type Shader<S extends import('./gpu/shader-manifest.js').ShaderId> = import('./gpu/reflect.js').ShaderSpec<S>;
  export const stats: Shader<'stats'>;
  export const finalize: Shader<'finalize'>;
  export const normalize: Shader<'normalize'>;
  export const normalizeF16: Shader<'normalize-f16'>;
  export const backwardReduce: Shader<'backward-reduce'>;
  export const backwardPrepare: Shader<'backward-prepare'>;
  export const backwardElementwise: Shader<'backward-elementwise'>;
  export const fold: Shader<'fold'>;
  export const syncBatchNorm: Shader<'sync-batch-norm'>;
  export const syncMerge: Shader<'sync-merge'>;
}

// wgsl_reflect's package entry for Node is CommonJS under "type": "module", which Node's ESM loader
// rejects; its ESM build works everywhere, so the build step and the tests import that file directly.
declare module 'wgsl_reflect/wgsl_reflect.module.js' {
  export { WgslReflect, WgslParser } from 'wgsl_reflect';
}
