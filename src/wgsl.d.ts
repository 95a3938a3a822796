// Vite (and vitest) load `.wgsl?raw` imports as strings (the benchmark harness and examples use them).
declare module '*.wgsl?raw' {
  const source: string;
  export default source;
}

// The library's shaders, composed and reflected at build time by build/wgsl-shaders.ts (a Vite
// plugin used by the library build, vitest and the benchmark page). Keys are `ShaderId`s
// (src/gpu/shader-manifest.ts).
declare module 'virtual:bn-shaders' {
  export const shaderSources: Readonly<Record<string, string>>;
  export const wgslPrelude: string;
  export const shaderReflection: Readonly<Record<string, import('./gpu/reflect.js').SerializedShader>>;
}

// wgsl_reflect's package entry for Node is CommonJS under "type": "module", which Node's ESM loader
// rejects; its ESM build works everywhere, so the build step and the tests import that file directly.
declare module 'wgsl_reflect/wgsl_reflect.module.js' {
  export { WgslReflect, WgslParser } from 'wgsl_reflect';
}
