/**
 * Every README code block runs (issue #15). Each ```ts / ```js block of README.md carries a marker
 * on the line before its fence: `<!-- readme-test: <id> -->` runs it under the spec of that id
 * (test/helpers/readme-block-specs.ts), `<!-- readme-test: not-run: <why> -->` exempts it. A
 * program block without a marker, a fence without a language, an id without a spec or a spec
 * without a block fails here.
 *
 * The blocks are written into a temporary consumer project that has this package installed (a
 * node_modules symlink to the worktree: imports by the package's real names, resolved through
 * package.json "exports" to the built dist/), type-checked together in one strict TypeScript
 * program, then run in plain Node once per backend (Dawn + SwiftShader WebGPU, and CPU), one
 * process per backend. `createContext({ backend: 'auto' })` in a block runs as that backend (a
 * runtime wrapper; the type check sees the package alone), since 'auto' picks the CPU on a fallback
 * adapter. The training block is also a leak check: the live GPU buffers at the start of every step
 * must equal those of the first.
 */
import { readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { REPO_ROOT, ensureDist } from './browser/dist.js';
import { BACKENDS, type Backend, caseCounter } from './helpers/backends.js';
import { BLOCK_SPECS, HELPERS } from './helpers/readme-block-specs.js';
import {
  type BlockRun,
  type ReadmeBlock,
  type ReadmeProject,
  createReadmeProject,
  markerProblems,
  parseReadmeBlocks,
  runBlocks,
  transpileProject,
  typeCheckProject,
} from './helpers/readme-blocks.js';

const count = caseCounter('readme-blocks');
const blocks = parseReadmeBlocks(readFileSync(join(REPO_ROOT, 'README.md'), 'utf8'));
const runnable = blocks.flatMap((block) => {
  const m = block.marker;
  if (m?.kind !== 'run') return [];
  const spec = BLOCK_SPECS[m.id];
  return spec ? [{ id: m.id, block, spec }] : [];
});

let project: ReadmeProject | null = null;
const runs = new Map<Backend, Promise<BlockRun[]>>();

function where(b: ReadmeBlock): string {
  return `README.md:${b.line - 1}`;
}

beforeAll(() => {
  ensureDist();
  project = createReadmeProject(REPO_ROOT, runnable, HELPERS);
}, 300_000);

afterAll(() => {
  if (project) rmSync(project.dir, { recursive: true, force: true });
});

describe('README code blocks', () => {
  it('every program block is marked, every fence names its language, ids and specs match one to one', () => {
    expect(markerProblems(blocks, BLOCK_SPECS)).toEqual([]);
    expect(runnable.length).toBe(Object.keys(BLOCK_SPECS).length);
  });

  it('the marker rules catch an unmarked block, an unlabelled fence, a shell block run, a reasonless not-run, a missing spec', () => {
    const fence = '```';
    const sample = [
      '<!-- readme-test: known -->',
      `${fence}ts`,
      'const a = 1;',
      fence,
      `${fence}ts`,
      'const unmarked = 2;',
      fence,
      fence,
      'a diagram without a language',
      fence,
      '<!-- readme-test: not-run: a shell session, not a program -->',
      `${fence}sh`,
      'npm start',
      fence,
      '<!-- readme-test: shell -->',
      `${fence}sh`,
      'npm test',
      fence,
      '<!-- readme-test: not-run: why -->',
      `${fence}js`,
      'x();',
      fence,
      '<!-- readme-test: unknown -->',
      `${fence}ts`,
      'y();',
      fence,
    ].join('\n');
    const parsed = parseReadmeBlocks(sample);
    expect(parsed.map((b) => [b.lang, b.line, b.marker])).toEqual([
      ['ts', 3, { kind: 'run', id: 'known' }],
      ['ts', 6, null],
      ['', 9, null],
      ['sh', 13, { kind: 'not-run', reason: 'a shell session, not a program' }],
      ['sh', 17, { kind: 'run', id: 'shell' }],
      ['js', 21, { kind: 'not-run', reason: 'why' }],
      ['ts', 25, { kind: 'run', id: 'unknown' }],
    ]);
    const known = BLOCK_SPECS['functional'];
    if (!known) throw new Error('no functional spec');
    expect(markerProblems(parsed, { known, cpuOnly: { ...known, backends: ['cpu'] } })).toEqual([
      'README.md:5: a ```ts block without a <!-- readme-test: id --> marker',
      'README.md:8: a fence without a language (```text for a diagram)',
      'README.md:16: only ts/js blocks run, this is ```sh',
      "README.md:16: no spec for 'shell' in test/helpers/readme-block-specs.ts",
      'README.md:20: not-run needs a reason',
      "README.md:24: no spec for 'unknown' in test/helpers/readme-block-specs.ts",
      "spec 'cpuOnly' has no README block",
      "spec 'cpuOnly': runs on both backends unless it is WebGPU-only and says why",
    ]);
  });

  it('type-check together as a strict Node consumer of the package (one program)', () => {
    if (!project) throw new Error('no project');
    const diagnostics = typeCheckProject(project);
    expect(diagnostics).toEqual([]);
    transpileProject(project);
    // Both backends start now, in parallel child processes; the tests below await them.
    for (const backend of BACKENDS) {
      const ids = runnable.filter((r) => r.spec.backends.includes(backend)).map((r) => r.id);
      runs.set(backend, runBlocks(project, backend, ids));
    }
  }, 120_000);

  describe.each(BACKENDS)('run on %s', (backend) => {
    for (const { id, block, spec } of runnable) {
      const skipReason = spec.backends.includes(backend) ? null : spec.webgpuOnly;
      // A WebGPU-only block is not a skipped test: on the CPU it asserts what it is.
      it(skipReason ? `${id} (${where(block)}): WebGPU-only` : `${id} (${where(block)})`, async () => {
        const all = runs.get(backend);
        if (!all) throw new Error('the type check did not pass, so nothing ran');
        const results = await all;
        const r = results.find((x) => x.id === id);
        if (skipReason) {
          expect(r, `${id} must not run on ${backend}: ${skipReason}`).toBeUndefined();
          return;
        }
        if (!r) throw new Error(`${id}: no result`);
        for (const line of r.logs) if (line.startsWith('[readme]')) console.log(line);
        expect(r.error === undefined ? null : project?.locate(r.error), `${id} on ${backend}, ${where(block)}`).toBeNull();
        expect(r.ok).toBe(true);
        count(backend);
      }, 240_000);
    }
  });
});
