import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { Plugin } from 'vite';
import { PRELUDE_FILE, shaderFiles, shaderManifest, type ShaderId } from '../src/gpu/shader-manifest.js';
import { reflectWgsl } from './reflect-wgsl.js';

const VIRTUAL_ID = 'virtual:bn-shaders';
const RESOLVED_ID = `\0${VIRTUAL_ID}`;
const SHADER_DIR = fileURLToPath(new URL('../shaders/', import.meta.url));

/**
 * WGSL without its `//` comments and indentation, line for line: the files keep their
 * documentation, the bundle carries only code, and Dawn's line numbers still match the files.
 * (WGSL has no string literals, so `//` always starts a comment; these files use no block comments.)
 */
export function stripComments(wgsl: string): string {
  if (wgsl.includes('/*')) throw new Error('block comments are not stripped; use // comments in .wgsl files');
  return wgsl
    .split('\n')
    .map((line) => line.replace(/\/\/.*$/, '').trim())
    .join('\n');
}

/**
 * `text` as a JS template literal: real newlines and unescaped quotes, so WGSL and JSON keep their
 * own size in the bundle (a string literal doubles every newline and quote into an escape).
 */
function templateLiteral(text: string): string {
  return `\`${text.replace(/[\\`]|\$\{/g, (m) => `\\${m}`)}\``;
}

/** The export name of shader `id` in `virtual:bn-shaders`: camelCase (`backward-reduce` → `backwardReduce`). */
export function shaderExportName(id: string): string {
  return id.replace(/-(\w)/g, (_m, ch: string) => ch.toUpperCase());
}

/**
 * The code of `virtual:bn-shaders`: each `.wgsl` file once as a string, and one export per module
 * of `shaderManifest`, `{ id, code, reflection }`: its source composed from the files (stage,
 * prelude, helpers) and every entry point's reflected bindings, overrides and uniform layout as
 * plain data. Each export is side-effect free (a getter joins the files; the reflection is a
 * `@__PURE__` JSON.parse), so a bundler drops the shaders an app never dispatches, and the files
 * only they use. Reflecting here keeps wgsl_reflect (about 300 KB) out of the library;
 * test/wgsl-static.test.ts re-reflects the sources and checks this output against it.
 */
export function shaderModuleCode(read: (file: string) => string = (f) => readFileSync(SHADER_DIR + f, 'utf8')): string {
  const ids = Object.keys(shaderManifest) as ShaderId[];
  const files = [...new Set([...ids.flatMap(shaderFiles), PRELUDE_FILE])];
  const text = new Map(files.map((f) => [f, read(f)]));
  const varOf = (f: string): string => `file${files.indexOf(f)}`;
  const lines = files.map((f) => `// shaders/${f}\nconst ${varOf(f)} = ${templateLiteral(stripComments(text.get(f) ?? ''))};`);
  for (const id of ids) {
    const parts = shaderFiles(id);
    const source = parts.map((f) => stripComments(text.get(f) ?? '')).join('\n');
    const reflection = reflectWgsl(id, source);
    // JSON.parse of a string: compact in the bundle (an object literal would be re-printed one
    // property per line) and the fastest way for an engine to build the data.
    lines.push(
      `export const ${shaderExportName(id)} = { id: ${JSON.stringify(id)}, get code() { return [${parts.map(varOf).join(', ')}].join('\\n'); }, reflection: /* @__PURE__ */ JSON.parse(${templateLiteral(JSON.stringify(reflection))}) };`,
    );
  }
  lines.push(`export const wgslPrelude = ${varOf(PRELUDE_FILE)};`);
  return `${lines.join('\n')}\n`;
}

/**
 * Vite plugin serving `virtual:bn-shaders` (see `shaderModuleCode`). Used by the library build
 * (vite.lib.config.ts), vitest and the benchmark page (vite.config.ts), so all three see the same
 * composed shaders and layouts. The `.wgsl` files are watched, so the dev server and vitest's
 * watch mode pick up edits.
 */
export function wgslShaders(): Plugin {
  return {
    name: 'bn-wgsl-shaders',
    resolveId(id) {
      return id === VIRTUAL_ID ? RESOLVED_ID : null;
    },
    load(id) {
      if (id !== RESOLVED_ID) return null;
      const read = (file: string): string => {
        this.addWatchFile(SHADER_DIR + file);
        return readFileSync(SHADER_DIR + file, 'utf8');
      };
      return shaderModuleCode(read);
    },
  };
}
