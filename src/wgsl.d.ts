// Vite (and vitest) load `.wgsl?raw` imports as strings; the library build inlines them.
declare module '*.wgsl?raw' {
  const source: string;
  export default source;
}

// wgsl_reflect's package entry for Node is CommonJS under "type": "module", which Node's ESM loader
// rejects; its ESM build works everywhere, so the library imports that file directly.
declare module 'wgsl_reflect/wgsl_reflect.module.js' {
  export { WgslReflect } from 'wgsl_reflect';
}
