import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { Plugin } from 'vite';
import { PRELUDE_FILE, shaderFiles, shaderManifest, type ShaderId } from '../src/gpu/shader-manifest.js';
import { type SerializedShader, uniformFields } from '../src/gpu/reflect.js';
import { type MinifiedWgsl, minifyWgsl } from './minify-wgsl.js';
import { reflectWgsl } from './reflect-wgsl.js';

const VIRTUAL_ID = 'virtual:bn-shaders';
const RESOLVED_ID = `\0${VIRTUAL_ID}`;
const SHADER_DIR = fileURLToPath(new URL('../shaders/', import.meta.url));
/** A shader file's text, by its path under shaders/. */
const readShader = (file: string): string => readFileSync(SHADER_DIR + file, 'utf8');

/**
 * WGSL as the bundle carries it, line for line: without its `//` comments, indentation and the
 * blanks a tokenizer does not need, so the files keep their documentation and layout, the bundle
 * only code, and Dawn's line numbers still match the files. (WGSL has no string literals, so `//`
 * always starts a comment; these files use no block comments.) Blanks go only where no two tokens
 * can merge: next to `, ; : ( ) { } [ ]`, and around an operator of `+-*\/%=!&|^` between two
 * operands (never next to `<` or `>`, which WGSL's template-list discovery reads, nor where a
 * unary operator follows, as in `a - -b`).
 */
export function compactWgsl(wgsl: string): string {
  if (wgsl.includes('/*')) throw new Error('block comments are not stripped; use // comments in .wgsl files');
  return wgsl
    .split('\n')
    .map((line) =>
      line
        .replace(/\/\/.*$/, '')
        .trim()
        .replace(/ {2,}/g, ' ')
        .replace(/(?<=[\w)\].]) ([-+*/%=!&|^]+) (?=[\w(.])/g, '$1')
        .replace(/ ?([,;:(){}[\]]) ?/g, '$1'),
    )
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

/** How each shader file ships: compacted, then minified with one map for all of them (build/minify-wgsl.ts). */
export interface ShippedWgsl extends MinifiedWgsl {
  /** Each module's reflection, read from the compacted source before renaming: the names the host uses. */
  readonly reflections: ReadonlyMap<ShaderId, SerializedShader>;
  /** Each file compacted but not minified, by file name. */
  readonly compacted: ReadonlyMap<string, string>;
}

/**
 * Every shader file as the bundle carries it. The reflection is taken from the compacted source,
 * and every entry point and override keeps its name (the host creates pipelines and passes
 * constants by name); bindings and uniform members are bound by number and packed by offset, so
 * their names may change.
 */
export function shippedWgsl(read: (file: string) => string = readShader): ShippedWgsl {
  const ids = Object.keys(shaderManifest) as ShaderId[];
  const files = [...new Set([...ids.flatMap(shaderFiles), PRELUDE_FILE])];
  const compacted = new Map(files.map((f) => [f, compactWgsl(read(f))]));
  const reflections = new Map(
    ids.map((id) => [
      id,
      reflectWgsl(
        id,
        shaderFiles(id)
          .map((f) => compacted.get(f) ?? '')
          .join('\n'),
      ),
    ]),
  );
  const keep = new Set([...reflections.values()].flatMap((r) => [...r.overrides, ...Object.keys(r.entries)]));
  return { ...minifyWgsl(compacted, keep), reflections, compacted };
}

/**
 * The code of `virtual:bn-shaders`: each `.wgsl` file once as a string (as `shippedWgsl` gives
 * it), and one export per module of `shaderManifest`, `{ id, code, reflection }`: its source
 * composed from the files (stage, prelude, helpers) and every entry point's reflected bindings,
 * overrides and uniform layout as plain data. Each export is side-effect free (a getter joins the
 * files; the reflection is a `@__PURE__` JSON.parse), so a bundler drops the shaders an app never
 * dispatches, and the files only they use. Reflecting here keeps wgsl_reflect (about 300 KB) out
 * of the library; test/wgsl-static.test.ts re-reflects the shipped sources and checks this output
 * against it.
 */
export function shaderModuleCode(read: (file: string) => string = readShader): string {
  const ids = Object.keys(shaderManifest) as ShaderId[];
  const shipped = shippedWgsl(read);
  const files = [...shipped.files.keys()];
  const varOf = (f: string): string => `file${files.indexOf(f)}`;
  const lines = files.map((f) => `// shaders/${f}\nconst ${varOf(f)} = ${templateLiteral(shipped.files.get(f) ?? '')};`);
  for (const id of ids) {
    // JSON.parse of a string: compact in the bundle (an object literal would be re-printed one
    // property per line) and the fastest way for an engine to build the data.
    lines.push(
      `export const ${shaderExportName(id)} = { id: ${JSON.stringify(id)}, get code() { return [${shaderFiles(id).map(varOf).join(', ')}].join('\\n'); }, reflection: /* @__PURE__ */ JSON.parse(${templateLiteral(JSON.stringify(shipped.reflections.get(id)))}) };`,
    );
  }
  return `${lines.join('\n')}\n`;
}

/**
 * The source of src/gpu/shader-types.ts: per shader module, the literal names of its overrides and
 * compute entry points, and per entry point the members of its uniform struct (padding `_*`
 * left out), from the same build-time reflection as `virtual:bn-shaders`. Stage descriptors
 * (src/gpu/stage.ts) take their parameter types from it, so an entry point, override or uniform
 * member that the WGSL does not declare is a tsc error. test/wgsl-static.test.ts fails when the
 * file is stale (`npx vitest run test/wgsl-static.test.ts -u` rewrites it).
 */
export function shaderTypesSource(read: (file: string) => string = readShader): string {
  const union = (names: readonly string[]): string => (names.length === 0 ? 'never' : names.map((n) => `'${n}'`).join(' | '));
  const lines = [
    '// Generated by build/wgsl-shaders.ts (shaderTypesSource) from the reflection of shaders/*.wgsl: do not edit.',
    '// test/wgsl-static.test.ts fails when it is stale; `npx vitest run test/wgsl-static.test.ts -u` rewrites it.',
    '',
    '/** Per shader module: its override names, and per compute entry point the members of its uniform struct. */',
    'export interface ShaderInterfaces {',
  ];
  for (const [id, r] of shippedWgsl(read).reflections) {
    lines.push(`  readonly '${id}': {`, `    readonly overrides: ${union([...r.overrides].sort())};`, '    readonly entries: {');
    for (const [entry, bindings] of Object.entries(r.entries).sort(([a], [b]) => a.localeCompare(b))) {
      const fields = bindings.flatMap((b) => [...uniformFields(r.uniforms[b]?.fields ?? []).keys()]).filter((f) => !f.startsWith('_'));
      lines.push(`      readonly ${entry}: ${union(fields.sort())};`);
    }
    lines.push('    };', '  };');
  }
  lines.push('}', '');
  return lines.join('\n');
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
