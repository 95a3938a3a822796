// Vite (and vitest) load `.wgsl?raw` imports as strings (the benchmark harness and examples use them).
declare module '*.wgsl?raw' {
  const source: string;
  export default source;
}

// The library's shaders, composed and reflected at build time by build/wgsl-shaders.ts (a Vite
// plugin used by the library build, vitest and the benchmark page): one export per `ShaderId`
// (src/gpu/shader-manifest.ts), camelCased, so a bundler keeps only the shaders an app uses.
// test/wgsl-static.test.ts checks that these names are exactly the manifest's.
declare module 'virtual:bn-shaders' {
  type Shader = import('./gpu/reflect.js').ShaderSpec;
  export const stats: Shader;
  export const finalize: Shader;
  export const normalize: Shader;
  export const backwardReduce: Shader;
  export const backwardElementwise: Shader;
  export const fold: Shader;
  export const syncBatchNorm: Shader;
  export const syncMerge: Shader;
  export const wgslPrelude: string;
}

// wgsl_reflect's package entry for Node is CommonJS under "type": "module", which Node's ESM loader
// rejects; its ESM build works everywhere, so the build step and the tests import that file directly.
declare module 'wgsl_reflect/wgsl_reflect.module.js' {
  export { WgslReflect, WgslParser } from 'wgsl_reflect';
}
