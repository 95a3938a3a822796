/**
 * Hostile model files, each small but describing something huge or malformed (written by
 * scripts/gen-hostile-files.py into a temp dir, never committed), parsed one per child process
 * under a V8 heap cap. Each must be refused with its stable ModelFileError reason (or, for the valid
 * ones, read), within a generous time bound measured inside the child, and without a large
 * allocation: the child's peak RSS (`process.resourceUsage().maxRSS`) stays under 400 MB.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'vite';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ModelFileErrorReason } from '../src/index.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const PYTHON = existsSync('/usr/bin/python3') ? '/usr/bin/python3' : 'python3';
/** Generous bounds: a refusal is a header check (milliseconds); the bound only catches a hang or a real allocation. */
const MAX_PARSE_MS = 2000;
const MAX_RSS_MB = 400;
const HEAP_CAP_MB = 256;

interface ChildResult {
  ok: boolean;
  reason?: ModelFileErrorReason;
  name?: string;
  message?: string;
  format?: string;
  tensors?: number;
  buffers?: number;
  ms: number;
  maxRssMB: number;
}

/** What each generated file must give: a refusal reason, or a successful read with this many tensors. */
const EXPECTED: Record<
  string,
  { reason: ModelFileErrorReason; message?: RegExp; options?: object } | { tensors: number; buffers?: number }
> = {
  'deep-dicts.pt': { reason: 'TOO_DEEP' },
  'deep-lists.pt': { reason: 'TOO_DEEP' },
  'self-dict.pt': { reason: 'CYCLE' },
  'negative-size.pt': { reason: 'BAD_SHAPE' },
  'past-storage.pt': { reason: 'BAD_SHAPE', message: /past its 4-element storage/ },
  'stride0-2e40.pt': { reason: 'LIMIT', message: /maxBytes/ },
  'stride0-2e30.pt': { reason: 'LIMIT', message: /maxBytes/ },
  'zip-bomb-storage.pt': { reason: 'LIMIT', message: /inflating zip entry 'archive\/data\/0'.*maxBytes/ },
  'zip-bomb-pickle.pt': { reason: 'LIMIT', message: /maxPickleBytes/ },
  'zip-lying-size.pt': { reason: 'CORRUPT', message: /inflates past its declared 1024 bytes/ },
  'pickle-dict-bomb.pt': { reason: 'LIMIT', message: /values the pickle builds.*maxBytes/, options: { maxBytes: 2 ** 24 } },
  'dag-60.pt': { reason: 'LIMIT', message: /1152921504606846976\).*maxEntries/ },
  'raw-pickle.pt': { reason: 'BAD_MAGIC', message: /not a zip archive/ },
  'overlap-400.safetensors': { reason: 'OVERLAP' },
  'cut-header.safetensors': { reason: 'CORRUPT', message: /not valid JSON/ },
  'huge-shape.safetensors': { reason: 'LIMIT', message: /2\^53/ },
  'negative-shape.safetensors': { reason: 'BAD_SHAPE' },
  'negative-dims.onnx': { reason: 'BAD_SHAPE' },
  'huge-dims.onnx': { reason: 'LIMIT', message: /maxBytes/ },
  'int64-bomb.onnx': { reason: 'TRUNCATED', message: /'w' has more than 1 values, dims \[1\] need 1/ },
  // Valid files: 600 names of one 4 MiB tensor share one buffer; a header length starting with 0x80;
  'memo-600.pt': { tensors: 600, buffers: 1 },
  // 60 levels of dicts reached 2^60 ways that hold no tensor, beside one that does.
  'dag-empty-60.pt': { tensors: 1 },
  'header-0x80.safetensors': { tensors: 4 },
};

const CHILD = `
import { readFileSync } from 'node:fs';
const [bundle, file, options] = process.argv.slice(2);
const io = await import(bundle);
const bytes = new Uint8Array(readFileSync(file));
const t0 = performance.now();
let result;
try {
  const f = io.parseModelFile(bytes, JSON.parse(options));
  const datas = [...f.tensors.values()].map((t) => t.data.buffer);
  result = { ok: true, format: f.format, tensors: f.tensors.size, buffers: new Set(datas).size };
} catch (e) {
  result = { ok: false, name: e?.constructor?.name, reason: e?.reason, message: String(e?.message ?? e) };
}
result.ms = performance.now() - t0;
result.maxRssMB = process.resourceUsage().maxRSS / 1024;
console.log(JSON.stringify(result));
`;

let dir = '';
const measured: string[] = [];
let bundle = '';
let child = '';

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'bn-hostile-'));
  const gen = spawnSync(PYTHON, [join(ROOT, 'scripts/gen-hostile-files.py'), join(dir, 'files')], { encoding: 'utf8' });
  if (gen.status !== 0) throw new Error(`gen-hostile-files.py failed: ${gen.stderr}`);
  // The child runs plain Node, so the TypeScript readers are bundled first (vite, dependencies inlined).
  bundle = join(dir, 'io.mjs');
  await build({
    configFile: false,
    root: ROOT,
    logLevel: 'silent',
    ssr: { noExternal: true },
    build: {
      ssr: join(ROOT, 'src/io/index.ts'),
      outDir: dir,
      emptyOutDir: false,
      minify: false,
      rollupOptions: { output: { entryFileNames: 'io.mjs', format: 'es' } },
    },
  });
  child = join(dir, 'child.mjs');
  writeFileSync(child, CHILD);
}, 60_000);

afterAll(() => {
  if (measured.length > 0) console.log(`[hostile] file: result, parse ms, peak RSS MB\n${measured.join('\n')}`);
  if (dir) rmSync(dir, { recursive: true, force: true });
});

function parseInChild(file: string, options: object = {}): ChildResult {
  const run = spawnSync(
    process.execPath,
    [`--max-old-space-size=${HEAP_CAP_MB}`, child, bundle, join(dir, 'files', file), JSON.stringify(options)],
    { encoding: 'utf8', timeout: 30_000 },
  );
  expect(run.status, `${file}: child exited with ${run.status} (${run.signal ?? ''}): ${run.stderr}`).toBe(0);
  return JSON.parse(run.stdout.trim().split('\n').at(-1) ?? '{}') as ChildResult;
}

describe('hostile model files (one child process each, heap capped)', () => {
  it('the generator wrote exactly the files this test expects', () => {
    expect(readdirSync(join(dir, 'files')).sort()).toEqual(Object.keys(EXPECTED).sort());
  });

  it.each(Object.keys(EXPECTED))('%s', (file) => {
    const want = EXPECTED[file];
    if (!want) throw new Error(`no expectation for ${file}`);
    const got = parseInChild(file, 'options' in want ? want.options : {});
    measured.push(
      `  ${file}: ${got.ok ? `read ${got.tensors} tensors` : got.reason}, ${got.ms.toFixed(1)} ms, ${got.maxRssMB.toFixed(0)} MB`,
    );
    if ('reason' in want) {
      expect(got.ok, `${file} was read, expected ${want.reason}`).toBe(false);
      expect(got.name, got.message).toBe('ModelFileError');
      expect(got.reason, got.message).toBe(want.reason);
      if (want.message) expect(got.message).toMatch(want.message);
    } else {
      expect(got.ok, `${file}: ${got.reason}: ${got.message}`).toBe(true);
      expect(got.tensors).toBe(want.tensors);
      if (want.buffers !== undefined) expect(got.buffers, 'tensors of one storage share its buffer').toBe(want.buffers);
    }
    expect(got.ms, `${file}: parse time`).toBeLessThan(MAX_PARSE_MS);
    expect(got.maxRssMB, `${file}: peak RSS`).toBeLessThan(MAX_RSS_MB);
  });
});
