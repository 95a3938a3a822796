/**
 * WGSL static checks: every shader parses with wgsl_reflect and compiles in Dawn without errors,
 * its bindings are well formed, and what TS binds and packs matches what each entry point declares.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { WgslReflect } from 'wgsl_reflect/wgsl_reflect.module.js';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { BatchNorm1d, BatchNorm2d, batchNorm, type BatchNormContext } from '../src/index.js';
import { shaderExportName, shaderTypesSource, shippedWgsl } from '../build/wgsl-shaders.js';
import * as contracts from '../src/gpu/contracts.js';
import { BindGroupCache } from '../src/gpu/object-caches.js';
import { reflectShader } from '../src/gpu/reflect.js';
import { PRELUDE_FILE, shaderFiles } from '../src/gpu/shader-manifest.js';
import { shaderSources, shaderSpecs, virtualExports, type ShaderId } from '../src/gpu/shader-sources.js';
import { contextFor, toLayout } from './helpers/backends.js';
import { encodeElementwise } from '../src/batch-norm/kernels/elementwise-pass.js';
import { BACKWARD_ELEMENTWISE } from '../src/batch-norm/kernels/stages/backward-elementwise.js';
import { FINALIZE } from '../src/batch-norm/kernels/stages/finalize.js';
import { NORMALIZE } from '../src/batch-norm/kernels/stages/normalize.js';
import { STATS } from '../src/batch-norm/kernels/stages/stats.js';
import type { GpuRuntime } from '../src/gpu/runtime.js';
import { bindUniforms } from '../src/gpu/tensor-binding.js';

/**
 * Never called: type-checked by tsc (`npm run typecheck`), each line must be an error, or the
 * unused @ts-expect-error fails the check. The stage descriptors take their names from the
 * build-time reflection (src/gpu/shader-types.ts), so a name the WGSL does not declare is caught
 * at compile time.
 */
function stageDescriptorTypeErrors(gpu: GpuRuntime): void {
  const device = gpu.device;
  // @ts-expect-error stats.wgsl has no entry point 'mainx'
  STATS.kernel(device, 'mainx');
  // @ts-expect-error finalize.wgsl declares no override BLOCK
  FINALIZE.kernel(device, 'finalize_train', { BLOCK: 32 });
  // @ts-expect-error normalize.wgsl declares no override BLOCK (stats.wgsl does)
  NORMALIZE.variant(device, 'normalize', 'cf', 4, { BLOCK: 32 });
  // @ts-expect-error normalize.wgsl has no entries stats_{cf,cl}{1,4}
  NORMALIZE.variant(device, 'stats', 'cf', 4);
  // @ts-expect-error finalize_train's uniform has 'lanes', not 'lane'
  bindUniforms(gpu, FINALIZE.kernel(device, 'finalize_train'), { lane: 1 });
  // @ts-expect-error the vector widths are 1 and 4
  STATS.variant(device, 'stats', 'cl', 2);
  const pass = {} as GPUComputePassEncoder;
  const g = { n: 1, c: 1, s: 1, perChannel: 1, order: 'cl' } as const;
  // @ts-expect-error normalize's uniform has no member 'bogus'
  encodeElementwise(gpu, pass, g, { stage: NORMALIZE, entry: 'normalize', tensors: {}, uniforms: { bogus: 1 }, resources: {} });
  // @ts-expect-error backward-elementwise's entries are elementwise_*, not normalize_*
  encodeElementwise(gpu, pass, g, { stage: BACKWARD_ELEMENTWISE, entry: 'normalize', tensors: {}, uniforms: {}, resources: {} });
  // Accepted: declared names.
  encodeElementwise(gpu, pass, g, { stage: NORMALIZE, entry: 'normalize', tensors: {}, uniforms: { eps: 1e-5 }, resources: {} });
  bindUniforms(gpu, STATS.variant(device, 'stats', 'cf', 4, { BLOCK: 32, CONTIGUOUS: 1 }), { rows: 1, lanes: 1 });
}
// Referenced so noUnusedLocals keeps it: its checks are the type errors, not a run.
void stageDescriptorTypeErrors;

const shaderIds = Object.keys(shaderSources) as ShaderId[];
/** Every shader file as it ships, with the renaming that took it there (build/wgsl-shaders.ts). */
const shipped = shippedWgsl();
/** The shared WGSL prelude as written (compacted, names unchanged), for the check that it agrees with contracts.ts. */
const wgslPrelude = shipped.compacted.get(PRELUDE_FILE) ?? '';
const shaderDir = new URL('../shaders/', import.meta.url);
const wgslFiles = [
  ...readdirSync(shaderDir).filter((f) => f.endsWith('.wgsl')),
  ...readdirSync(new URL('common/', shaderDir)).map((f) => `common/${f}`),
];

/** The prelude's `const NAME: u32 = Vu;` declarations, by name. */
function preludeConstants(): Map<string, number> {
  const found = new Map<string, number>();
  for (const m of wgslPrelude.matchAll(/^const (\w+): ?u32 ?= ?(\d+)u;/gm)) found.set(m[1] ?? '', Number(m[2]));
  return found;
}

/** contracts.ts's numeric exports: the names the prelude must declare with the same values. */
const tsConstants = new Map<string, number>();
for (const [name, value] of Object.entries(contracts)) {
  if (typeof value === 'number' && !name.endsWith('_BYTES')) tsConstants.set(name, value);
}

describe('contracts: TS (src/gpu/contracts.ts) and WGSL (shaders/common/prelude.wgsl) agree', () => {
  it('every module-scope const of the prelude is a plain u32 literal', () => {
    const declared = wgslPrelude.split('\n').filter((l) => /^const /.test(l));
    expect(declared.length).toBe(preludeConstants().size);
  });

  it('the prelude declares exactly the TS constants, with the same values', () => {
    const wgsl = preludeConstants();
    const ts = new Map([...tsConstants].filter(([name]) => name !== 'WORKGROUP_SIZE'));
    expect(Object.fromEntries(wgsl)).toEqual(Object.fromEntries(ts));
  });

  it('WORKGROUP_SIZE is an override without a default, so the host must pass it', () => {
    expect(wgslPrelude).toMatch(/^override WORKGROUP_SIZE: ?u32;$/m);
    expect(Number.isInteger(contracts.WORKGROUP_SIZE)).toBe(true);
  });

  it('flag bits are distinct single bits; planes are distinct and before the packed region', () => {
    const flags = [...tsConstants].filter(([n]) => n.startsWith('FLAG_')).map(([, v]) => v);
    expect(flags.length).toBeGreaterThan(0);
    for (const f of flags) expect(f > 0 && (f & (f - 1)) === 0, `flag ${f} is one bit`).toBe(true);
    expect(new Set(flags).size).toBe(flags.length);
    const planes = [...tsConstants].filter(([n]) => n.startsWith('PLANE_')).map(([, v]) => v);
    expect(new Set(planes).size).toBe(planes.length);
    expect(Math.max(...planes)).toBeLessThan(contracts.CHANNEL_STATS_PLANES);
  });

  it("record layouts: each record's components are a permutation of its vec4, and the buffers hold them", () => {
    for (const prefix of ['MOMENTS_', 'MERGED_']) {
      const components = [...tsConstants].filter(([n]) => n.startsWith(prefix)).map(([, v]) => v);
      expect([...components].sort(), prefix).toEqual([0, 1, 2, 3]);
    }
    expect(contracts.MOMENTS_RECORD_BYTES).toBe(16);
    expect(contracts.MERGED_RECORD_BYTES).toBe(16);
    expect([contracts.GRAD_PLANE_SUM_DY, contracts.GRAD_PLANE_SUM_DY_XHAT].sort()).toEqual([0, 1]);
    expect(contracts.GRAD_SUMS_PLANES).toBe(2);
    expect(contracts.COUNTER_BYTES % 16).toBe(0);
    expect(contracts.COUNTER_BYTES).toBeGreaterThanOrEqual(contracts.COUNTER_SLOTS * 4);
  });

  it('the shaders use the shared sizes by name: STATS_BLOCK is the BLOCK default, CONTIGUOUS_COLUMN_GROUP the column group', () => {
    const stage = (f: string): string => readFileSync(new URL(f, shaderDir), 'utf8');
    expect(stage('stats.wgsl')).toMatch(/^override BLOCK: u32 = STATS_BLOCK;$/m);
    for (const f of ['normalize.wgsl', 'backward-elementwise.wgsl']) expect(stage(f)).toMatch(/groupCols == CONTIGUOUS_COLUMN_GROUP\b/);
    // The sync records are built and read through their named components only.
    const sync = stage('sync-batch-norm.wgsl');
    for (const name of [
      'MOMENTS_K',
      'MOMENTS_MEAN_OFFSET',
      'MOMENTS_M2',
      'MOMENTS_COUNT',
      'MERGED_K',
      'MERGED_MEAN_OFFSET',
      'MERGED_INVSTD',
    ]) {
      expect(sync, name).toMatch(new RegExp(`\\[${name}\\]`));
    }
    expect(sync).not.toMatch(/\bm\.[xyzw]\b|vec4f\(k, mean/);
  });

  it.each(wgslFiles)('%s parses on its own and restates no contract', (file) => {
    const text = readFileSync(new URL(file, shaderDir), 'utf8');
    expect(() => new WgslReflect(text)).not.toThrow();
    if (file === 'common/prelude.wgsl') return;
    // Contracts come from the prelude only: no file declares its own flags, planes or workgroup size.
    expect(text).not.toMatch(/^\s*(const|override)\s+(FLAG_\w+|PLANE_\w+|CHANNEL_STATS_PLANES|WORKGROUP_SIZE)\b/m);
    // channelStats is addressed through the named planes, never by a bare plane number, and its
    // layout arithmetic lives in the common/ helpers only.
    expect(text).not.toMatch(/(plane1|plane4|write_plane)\(\s*\d/);
    if (!file.startsWith('common/')) expect(text).not.toMatch(/channelStats\s*\[/);
  });
});

/** Modules that open with `enable f16;` (they compile only on devices with shader-f16). */
const NATIVE_F16_SHADERS: ReadonlySet<string> = new Set(['normalize-f16']);

describe('WGSL sources', () => {
  let ctx: BatchNormContext;
  beforeAll(async () => {
    ctx = await contextFor('webgpu');
  });
  afterAll(() => ctx.destroy());

  it('virtual:bn-shaders exports one module per manifest id (the names src/wgsl.d.ts declares)', () => {
    expect([...virtualExports].sort()).toEqual(shaderIds.map(shaderExportName).sort());
    for (const id of shaderIds) expect(shaderSpecs[id].id).toBe(id);
  });

  it('src/gpu/shader-types.ts (the literal types of the stage descriptors) is the reflection of the shaders now', async () => {
    // Stale after a WGSL edit that adds or renames an entry point, override or uniform member:
    // `npx vitest run test/wgsl-static.test.ts -u` regenerates it.
    await expect(shaderTypesSource()).toMatchFileSnapshot('../src/gpu/shader-types.ts');
  });

  it.each(shaderIds)('%s parses, has compute entries and well-formed bindings', (id) => {
    const reflect = new WgslReflect(shaderSources[id]);
    expect(reflect.entry.compute.length).toBeGreaterThan(0);
    for (const [name, entry] of reflectShader(shaderSpecs[id])) {
      const numbers = entry.bindings.map((b) => b.binding);
      expect(new Set(numbers).size, `${id}.${name} binding numbers unique`).toBe(numbers.length);
      expect(
        entry.bindings.every((b) => b.group === 0),
        `${id}.${name} uses group 0 only`,
      ).toBe(true);
      // WebGPU's default maxStorageBuffersPerShaderStage is 8: stay within it on every device.
      expect(entry.bindings.filter((b) => b.type !== 'uniform').length).toBeLessThanOrEqual(8);
      expect(entry.bindings.filter((b) => b.type === 'uniform').length).toBeLessThanOrEqual(1);
      if (entry.uniform) expect(entry.uniform.size % 16, `${id}.${name} uniform size`).toBe(0);
    }
  });

  it.each(shaderIds)('%s: the build-time module is its manifest files, and its layouts are what wgsl_reflect reads now', (id) => {
    const files = shaderFiles(id).map((f) => shipped.files.get(f));
    expect(shaderSources[id]).toBe(files.join('\n'));
    // The guard on build-time reflection: parse the source and the shipped (minified) module again
    // and compare, entry by entry. The shipped one must be the same module under other names:
    // same entry points and overrides, same binding numbers and types, same uniform offsets.
    const source = shaderFiles(id)
      .map((f) => shipped.compacted.get(f))
      .join('\n');
    const sourceName = new Map([...shipped.names].map(([from, to]) => [to, from]));
    const sourceMember = new Map([...shipped.members].map(([from, to]) => [to, from]));
    for (const [text, name, member] of [
      [source, (n: string) => n, (n: string) => n],
      [shaderSources[id], (n: string) => sourceName.get(n) ?? n, (n: string) => sourceMember.get(n) ?? n],
    ] as const) {
      const reflect = new WgslReflect(text);
      const runtime = reflectShader(shaderSpecs[id]);
      expect([...runtime.keys()].sort()).toEqual(reflect.entry.compute.map((f) => f.name).sort());
      for (const fn of reflect.entry.compute) {
        const entry = runtime.get(fn.name);
        expect(entry?.overrides).toEqual(reflect.overrides.map((o) => o.name));
        const expected = fn.resources
          .map((r) => ({
            name: name(r.name),
            group: r.group,
            binding: r.binding,
            type: String(r.resourceType) === '0' ? 'uniform' : r.access === 'read' ? 'read-only-storage' : 'storage',
          }))
          .sort((a, b) => a.binding - b.binding);
        expect(entry?.bindings, `${id}.${fn.name} bindings`).toEqual(expected);
        const u = fn.resources.find((r) => String(r.resourceType) === '0');
        const fields = new Map((u?.members ?? []).map((m) => [member(m.name), { offset: m.offset, type: m.type.name }]));
        expect(entry?.uniform ?? null, `${id}.${fn.name} uniform`).toEqual(u ? { binding: name(u.name), size: u.size, fields } : null);
      }
    }
  });

  it.each(shaderIds)('%s compiles in Dawn with no errors or warnings', async (id) => {
    const device = ctx.device;
    if (!device) throw new Error('no device');
    device.pushErrorScope('validation');
    const module = device.createShaderModule({ label: `test.${id}`, code: shaderSources[id] });
    const info = await module.getCompilationInfo();
    const problems = info.messages.filter((m) => m.type !== 'info').map((m) => `${m.type} ${m.lineNum}:${m.linePos} ${m.message}`);
    const error = await device.popErrorScope();
    // The native-f16 module needs shader-f16, which SwiftShader lacks: there its `enable f16;` must
    // be the one and only complaint (test/half-precision.test.ts checks it statically instead).
    if (NATIVE_F16_SHADERS.has(id) && !device.features.has('shader-f16')) {
      expect(problems).toHaveLength(1);
      expect(problems[0]).toMatch(/^error \d+:\d+ extension 'f16' is not allowed/);
      expect(error).not.toBeNull();
      return;
    }
    expect(problems).toEqual([]);
    expect(error).toBeNull();
  });

  it('binds exactly the resources each forward entry point declares, for every kernel variant', async () => {
    const bound = new Map<string, string[]>();
    const realGet = BindGroupCache.prototype.get;
    const record = vi.spyOn(BindGroupCache.prototype, 'get').mockImplementation(function (this: BindGroupCache, kernel, resources) {
      bound.set(kernel.key.split('|')[0] ?? '', Object.keys(resources).sort());
      return realGet.call(this, kernel, resources);
    });
    try {
      // channels-first vec4 (S % 4 == 0) and scalar (S odd); channels-last vec4 (C % 4 == 0) and scalar.
      const shapes: Array<[number[], 'channels_first' | 'channels_last']> = [
        [[2, 3, 2, 2], 'channels_first'],
        [[2, 3, 3, 3], 'channels_first'],
        [[2, 4, 3, 3], 'channels_last'],
        [[2, 3, 3, 3], 'channels_last'],
      ];
      // float16 storage takes the half entries: word walks for even rows, anyh for odd ones.
      for (const dtype of ['float32', 'float16'] as const) {
        for (const [shape, layout] of shapes) {
          const n = shape.reduce((a, b) => a * b, 1);
          const x = ctx.tensor(
            toLayout(
              Array.from({ length: n }, (_, i) => Math.sin(i)),
              shape,
              layout,
            ),
            shape,
            { layout, dtype },
          );
          const bn = new BatchNorm2d(ctx, shape[1] ?? 0);
          bn.forward(x).destroy();
          bn.eval().forward(x).destroy();
          bn.destroy();
          x.destroy();
        }
      }
      const plain = new BatchNorm1d(ctx, 3, { affine: false, trackRunningStats: false });
      plain
        .forward(
          ctx.tensor(
            new Float32Array(6).map((_, i) => i),
            [2, 3],
          ),
        )
        .destroy();
      plain.destroy();
      batchNorm(
        ctx,
        ctx.tensor(
          new Float32Array(6).map((_, i) => i),
          [2, 3],
        ),
        { training: true },
      ).destroy();
      await ctx.sync();
    } finally {
      record.mockRestore();
    }
    for (const id of ['stats', 'finalize', 'normalize'] as const) {
      for (const [name, entry] of reflectShader(shaderSpecs[id])) {
        const key = `${id}.${name}`;
        const names = bound.get(key);
        expect(names, `${key} was never dispatched by the forward paths`).toBeDefined();
        expect(names).toEqual(entry.bindings.map((b) => b.name).sort());
      }
    }
  });
});
