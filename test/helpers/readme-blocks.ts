/**
 * README code blocks as programs: parse README.md's fenced blocks and their `readme-test` markers,
 * lay them out in a temporary consumer project that has this package installed (a node_modules
 * symlink to the worktree, which resolves through package.json "exports" to the built dist/),
 * type-check them all in one strict TypeScript program, and run them in plain Node once per
 * backend. Used by test/readme-blocks.test.ts; the per-block inputs and checks are in
 * test/helpers/readme-block-specs.ts.
 */
import { spawn } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import ts from 'typescript';
import type { Backend } from './backends.js';

/** Fence languages that are programs: each such block needs a marker saying how it is tested. */
export const PROGRAM_LANGUAGES: ReadonlySet<string> = new Set(['ts', 'typescript', 'js', 'javascript', 'mjs']);

/** How a block is tested, from the HTML comment on the line before its fence. */
export type BlockMarker = { readonly kind: 'run'; readonly id: string } | { readonly kind: 'not-run'; readonly reason: string };

/** One fenced block of README.md. */
export interface ReadmeBlock {
  /** The fence's info string ('' when it has none). */
  readonly lang: string;
  /** The block's text, without the fences. */
  readonly code: string;
  /** 1-based README line of the block's first code line. */
  readonly line: number;
  readonly marker: BlockMarker | null;
}

// `<!-- readme-test: training -->` runs the block under that id; `<!-- readme-test: not-run: why -->`
// exempts it, saying why.
const MARKER = /^<!--\s*readme-test:\s*(.*?)\s*-->\s*$/;

/** Every fenced block of `markdown` (fences at column 0, as this README writes them). */
export function parseReadmeBlocks(markdown: string): ReadmeBlock[] {
  const lines = markdown.split('\n');
  const blocks: ReadmeBlock[] = [];
  for (let i = 0; i < lines.length; i++) {
    const open = /^```(\S*)/.exec(lines[i] ?? '');
    if (!open) continue;
    let end = i + 1;
    while (end < lines.length && !/^```\s*$/.test(lines[end] ?? '')) end++;
    if (end >= lines.length) throw new Error(`README.md:${i + 1}: unclosed code fence`);
    let before = i - 1;
    while (before >= 0 && (lines[before] ?? '').trim() === '') before--;
    const m = MARKER.exec(lines[before] ?? '');
    let marker: BlockMarker | null = null;
    if (m) {
      const body = m[1] ?? '';
      const notRun = /^not-run:\s*(.+)$/.exec(body);
      marker = notRun ? { kind: 'not-run', reason: notRun[1] ?? '' } : { kind: 'run', id: body };
    }
    blocks.push({ lang: open[1] ?? '', code: lines.slice(i + 1, end).join('\n'), line: i + 2, marker });
    i = end;
  }
  return blocks;
}

/**
 * The marker rules, as readable problems (none when the README is in order): every fence names its
 * language (so no program hides in an unlabelled one); every program block has a marker; a not-run
 * marker says why; run ids are unique, each has a spec and each spec a block; and a block that
 * does not run on both backends is WebGPU-only and says why.
 */
export function markerProblems(blocks: readonly ReadmeBlock[], specs: Readonly<Record<string, BlockSpec>>): string[] {
  const problems: string[] = [];
  const ids = new Set<string>();
  for (const b of blocks) {
    const at = `README.md:${b.line - 1}`;
    if (b.lang === '') problems.push(`${at}: a fence without a language (\`\`\`text for a diagram)`);
    const program = PROGRAM_LANGUAGES.has(b.lang);
    if (program && !b.marker) problems.push(`${at}: a \`\`\`${b.lang} block without a <!-- readme-test: id --> marker`);
    if (!program && b.marker?.kind === 'run') problems.push(`${at}: only ts/js blocks run, this is \`\`\`${b.lang || '(none)'}`);
    if (b.marker?.kind === 'not-run' && b.marker.reason.length < 10) problems.push(`${at}: not-run needs a reason`);
    if (b.marker?.kind === 'run') {
      if (!/^[a-z0-9-]+$/.test(b.marker.id)) problems.push(`${at}: id '${b.marker.id}' is not kebab-case`);
      if (ids.has(b.marker.id)) problems.push(`${at}: id '${b.marker.id}' used twice`);
      ids.add(b.marker.id);
      if (!specs[b.marker.id]) problems.push(`${at}: no spec for '${b.marker.id}' in test/helpers/readme-block-specs.ts`);
    }
  }
  for (const [id, spec] of Object.entries(specs)) {
    if (!ids.has(id)) problems.push(`spec '${id}' has no README block`);
    const both = spec.backends.includes('webgpu') && spec.backends.includes('cpu');
    const webgpuOnly = spec.backends.length === 1 && spec.backends[0] === 'webgpu' && (spec.webgpuOnly ?? '').length > 20;
    if (!both && !webgpuOnly) problems.push(`spec '${id}': runs on both backends unless it is WebGPU-only and says why`);
  }
  return problems;
}

/** What the harness wraps around one README block. */
export interface BlockSpec {
  /**
   * Backends the block runs on. A block that is inherently WebGPU-only lists only 'webgpu' and says
   * why in `webgpuOnly`.
   */
  readonly backends: readonly Backend[];
  readonly webgpuOnly?: string;
  /**
   * Hidden code before the block: the inputs it names as the user's own (`checkpoint`, `pixels`,
   * `batches`, ...). Its own imports use `__`-prefixed namespaces so they never clash with the
   * block's.
   */
  readonly prelude: string;
  /** Hidden code after the block: assertions on what the block computed (its top-level names). */
  readonly epilogue: string;
  /** Files the block opens, copied into its working directory: name there → path in the repo. */
  readonly files?: Readonly<Record<string, string>>;
}

/** A block placed in the consumer project: its source file and where its parts start. */
interface PlacedBlock {
  readonly id: string;
  readonly block: ReadmeBlock;
  readonly spec: BlockSpec;
  readonly tsFile: string;
  /** 0-based line of the generated file where the README block's first line is. */
  readonly blockStart: number;
  readonly blockLines: number;
}

/** The consumer project of all blocks. */
export interface ReadmeProject {
  readonly dir: string;
  readonly blocks: readonly PlacedBlock[];
  /** `text` (a stack trace) with each `blocks/<id>.ts:line` also given as its README.md line. */
  locate(text: string): string;
}

const HARNESS_HEADER = [
  "import * as __bn from 'webgpu-batchnorm';",
  "import * as __io from 'webgpu-batchnorm/io';",
  "import * as __sync from 'webgpu-batchnorm/sync';",
  "import * as __fs from 'node:fs';",
  "import __assert from 'node:assert/strict';",
  "const __backend = process.env['README_BACKEND'] === 'webgpu' ? 'webgpu' : 'cpu';",
  // Not every prelude or epilogue uses each of them.
  'void __bn; void __io; void __sync; void __fs; void __assert; void __backend;',
].join('\n');

/**
 * The package as a user's project sees it: node_modules/webgpu-batchnorm is the worktree itself
 * (so its package.json "exports" resolve to dist/), and the peer and type packages it needs.
 */
function linkPackages(dir: string, repoRoot: string): void {
  const nm = join(dir, 'node_modules');
  mkdirSync(nm);
  symlinkSync(repoRoot, join(nm, 'webgpu-batchnorm'), 'dir');
  for (const name of ['webgpu', '@webgpu', '@types']) symlinkSync(join(repoRoot, 'node_modules', name), join(nm, name), 'dir');
}

/**
 * At runtime, `'webgpu-batchnorm'` imported by a block resolves to a thin wrapper whose
 * `createContext` runs `backend: 'auto'` (or no backend) as README_BACKEND: 'auto' picks the CPU on
 * SwiftShader's fallback adapter, and each block must run on both backends. A block that names a
 * backend explicitly gets it. Everything else is the package itself; the type check sees only it.
 */
function writeRuntimeShim(dir: string): void {
  writeFileSync(
    join(dir, 'hooks.mjs'),
    `const SHIM = new URL('./shim.mjs', import.meta.url).href;
const BLOCKS = new URL('./blocks/', import.meta.url).href;
export async function resolve(specifier, context, next) {
  if (specifier === 'webgpu-batchnorm' && context.parentURL?.startsWith(BLOCKS)) return { url: SHIM, shortCircuit: true };
  return next(specifier, context);
}
`,
  );
  writeFileSync(
    join(dir, 'shim.mjs'),
    `import * as lib from 'webgpu-batchnorm';
export * from 'webgpu-batchnorm';
export const contexts = [];
export async function createContext(options = {}) {
  const asked = options?.backend ?? 'auto';
  const backend = asked === 'auto' ? process.env.README_BACKEND : asked;
  const ctx = await lib.createContext({ ...options, backend });
  if (ctx.backend !== backend) throw new Error('asked for ' + backend + ', got ' + ctx.backend);
  contexts.push(ctx);
  return ctx;
}
`,
  );
  writeFileSync(
    join(dir, 'runner.mjs'),
    `import { register } from 'node:module';
import { mkdirSync } from 'node:fs';
register('./hooks.mjs', import.meta.url);
const { contexts } = await import('./shim.mjs');
const results = [];
const root = process.cwd();
for (const id of process.argv.slice(2)) {
  const logs = [];
  const log = console.log;
  console.log = (...args) => logs.push(args.map(String).join(' '));
  // Each block in a working directory of its own, holding the files it opens.
  process.chdir(new URL('./work/' + id + '/', import.meta.url).pathname);
  try {
    await import('./blocks/' + id + '.js');
    results.push({ id, ok: true, logs });
  } catch (e) {
    results.push({ id, ok: false, error: e instanceof Error ? (e.stack ?? e.message) : String(e), logs });
  } finally {
    console.log = log;
    process.chdir(root);
    for (const ctx of contexts.splice(0)) { try { await ctx.sync(); } catch {} ctx.destroy(); }
  }
}
console.log('@@readme-results ' + JSON.stringify(results));
process.exit(0);
`,
  );
}

/**
 * Writes every runnable block, wrapped in the shared `helpers`, its spec's prelude and its epilogue,
 * into a fresh consumer project in the system temp directory.
 */
export function createReadmeProject(
  repoRoot: string,
  runnable: readonly { id: string; block: ReadmeBlock; spec: BlockSpec }[],
  helpers: string,
): ReadmeProject {
  const dir = mkdtempSync(join(tmpdir(), 'bn-readme-'));
  writeFileSync(join(dir, 'package.json'), `${JSON.stringify({ name: 'readme-blocks', private: true, type: 'module' })}\n`);
  linkPackages(dir, repoRoot);
  writeRuntimeShim(dir);
  mkdirSync(join(dir, 'blocks'));
  const blocks = runnable.map(({ id, block, spec }) => {
    const head = `${HARNESS_HEADER}\n${helpers.trim()}\n${spec.prelude.trim()}\n`;
    const blockStart = head.split('\n').length - 1;
    const source = `${head}${block.code}\n${spec.epilogue.trim()}\nexport {};\n`;
    const tsFile = join(dir, 'blocks', `${id}.ts`);
    writeFileSync(tsFile, source);
    const work = join(dir, 'work', id);
    mkdirSync(work, { recursive: true });
    for (const [name, from] of Object.entries(spec.files ?? {})) copyFileSync(join(repoRoot, from), join(work, name));
    return { id, block, spec, tsFile, blockStart, blockLines: block.code.split('\n').length };
  });
  const locate = (text: string): string =>
    text.replace(/blocks\/([\w-]+)\.ts:(\d+)(?::\d+)?/g, (all, id: string, line: string) => {
      const placed = blocks.find((b) => b.id === id);
      return placed ? `${all} = ${origin(placed, Number(line) - 1)}` : all;
    });
  return { dir, blocks, locate };
}

/** Where a line of a generated file comes from: README.md for the block, else the harness. */
function origin(p: PlacedBlock, line0: number): string {
  const k = line0 - p.blockStart;
  if (k >= 0 && k < p.blockLines) return `README.md:${p.block.line + k} (block '${p.id}')`;
  return `harness of block '${p.id}' (${k < 0 ? 'prelude' : 'epilogue'}) line ${line0 + 1}`;
}

/**
 * Type-checks every block in one program, as a strict Node consumer of the package would
 * (NodeNext resolution through the symlinked package's "exports", strict, noUncheckedIndexedAccess,
 * exactOptionalPropertyTypes; skipLibCheck as `tsc --init` sets it, see README "TypeScript").
 * Returns diagnostics located in README.md lines where they fall in a block.
 */
export function typeCheckProject(project: ReadmeProject): string[] {
  const options: ts.CompilerOptions = {
    target: ts.ScriptTarget.ES2022,
    module: ts.ModuleKind.NodeNext,
    moduleResolution: ts.ModuleResolutionKind.NodeNext,
    lib: ['lib.es2022.d.ts'],
    types: ['node'],
    strict: true,
    noUncheckedIndexedAccess: true,
    exactOptionalPropertyTypes: true,
    noImplicitReturns: true,
    skipLibCheck: true,
    noEmit: true,
  };
  const files = project.blocks.map((b) => b.tsFile);
  const program = ts.createProgram(files, options);
  return ts.getPreEmitDiagnostics(program).map((d) => {
    const text = ts.flattenDiagnosticMessageText(d.messageText, '\n');
    const placed = project.blocks.find((b) => b.tsFile === d.file?.fileName);
    if (!placed || !d.file || d.start === undefined) return `${d.file?.fileName ?? ''} ${text}`;
    return `${origin(placed, d.file.getLineAndCharacterOfPosition(d.start).line)}: ${text}`;
  });
}

/** Emits each block as JavaScript next to its source (types erased only; nothing else changes). */
export function transpileProject(project: ReadmeProject): void {
  for (const b of project.blocks) {
    const source = ts.sys.readFile(b.tsFile) ?? '';
    const out = ts.transpileModule(source, {
      // Inline source maps: with --enable-source-maps a failing block's stack names its .ts lines,
      // which locate() turns into README lines.
      compilerOptions: { target: ts.ScriptTarget.ES2022, module: ts.ModuleKind.ESNext, inlineSourceMap: true, inlineSources: true },
      fileName: b.tsFile,
    });
    writeFileSync(b.tsFile.replace(/\.ts$/, '.js'), out.outputText);
  }
}

/** One block's run on one backend. */
export interface BlockRun {
  readonly id: string;
  readonly ok: boolean;
  readonly error?: string;
  readonly logs: readonly string[];
}

/** Runs `ids` in order in one plain Node process with README_BACKEND=`backend`. */
export function runBlocks(project: ReadmeProject, backend: Backend, ids: readonly string[]): Promise<BlockRun[]> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--enable-source-maps', join(project.dir, 'runner.mjs'), ...ids], {
      cwd: project.dir,
      env: {
        ...process.env,
        README_BACKEND: backend,
        VK_ICD_FILENAMES: process.env['VK_ICD_FILENAMES'] ?? '/usr/lib/chromium/vk_swiftshader_icd.json',
        XDG_RUNTIME_DIR: process.env['XDG_RUNTIME_DIR'] ?? '/tmp',
      },
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => {
      stdout += c.toString();
    });
    child.stderr.on('data', (c: Buffer) => {
      stderr += c.toString();
    });
    const timer = setTimeout(() => child.kill('SIGKILL'), 180_000);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      const line = stdout.split('\n').find((l) => l.startsWith('@@readme-results '));
      if (!line) {
        reject(new Error(`README runner (${backend}) exited ${String(code)} without results:\n${stdout}\n${stderr}`));
        return;
      }
      resolve(JSON.parse(line.slice('@@readme-results '.length)) as BlockRun[]);
    });
  });
}
