/**
 * WGSL static checks: every shader parses with wgsl_reflect and compiles in Dawn without errors,
 * its bindings are well formed, and what TS binds and packs matches what each entry point declares.
 */
import { WgslReflect } from 'wgsl_reflect/wgsl_reflect.module.js';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { BatchNorm1d, BatchNorm2d, batchNorm, type BatchNormContext } from '../src/index.js';
import { BindGroupCache } from '../src/gpu/object-caches.js';
import { reflectShader } from '../src/gpu/reflect.js';
import { shaderSources, type ShaderId } from '../src/gpu/shader-sources.js';
import { contextFor, toLayout } from './helpers/backends.js';

const shaderIds = Object.keys(shaderSources) as ShaderId[];

describe('WGSL sources', () => {
  let ctx: BatchNormContext;
  beforeAll(async () => {
    ctx = await contextFor('webgpu');
  });
  afterAll(() => ctx.destroy());

  it.each(shaderIds)('%s parses, has compute entries and well-formed bindings', (id) => {
    const reflect = new WgslReflect(shaderSources[id]);
    expect(reflect.entry.compute.length).toBeGreaterThan(0);
    for (const [name, entry] of reflectShader(id)) {
      const numbers = entry.bindings.map((b) => b.binding);
      expect(new Set(numbers).size, `${id}.${name} binding numbers unique`).toBe(numbers.length);
      expect(entry.bindings.every((b) => b.group === 0), `${id}.${name} uses group 0 only`).toBe(true);
      // WebGPU's default maxStorageBuffersPerShaderStage is 8: stay within it on every device.
      expect(entry.bindings.filter((b) => b.type !== 'uniform').length).toBeLessThanOrEqual(8);
      expect(entry.bindings.filter((b) => b.type === 'uniform').length).toBeLessThanOrEqual(1);
      if (entry.uniform) expect(entry.uniform.size % 16, `${id}.${name} uniform size`).toBe(0);
    }
  });

  it.each(shaderIds)('%s compiles in Dawn with no errors or warnings', async (id) => {
    const device = ctx.device;
    if (!device) throw new Error('no device');
    device.pushErrorScope('validation');
    const module = device.createShaderModule({ label: `test.${id}`, code: shaderSources[id] });
    const info = await module.getCompilationInfo();
    const problems = info.messages.filter((m) => m.type !== 'info').map((m) => `${m.type} ${m.lineNum}:${m.linePos} ${m.message}`);
    expect(problems).toEqual([]);
    expect(await device.popErrorScope()).toBeNull();
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
      for (const [shape, layout] of shapes) {
        const n = shape.reduce((a, b) => a * b, 1);
        const x = ctx.tensor(toLayout(Array.from({ length: n }, (_, i) => Math.sin(i)), shape, layout), shape, { layout });
        const bn = new BatchNorm2d(ctx, shape[1] ?? 0);
        bn.forward(x).destroy();
        bn.eval().forward(x).destroy();
        bn.destroy();
        x.destroy();
      }
      const plain = new BatchNorm1d(ctx, 3, { affine: false, trackRunningStats: false });
      plain.forward(ctx.tensor(new Float32Array(6).map((_, i) => i), [2, 3])).destroy();
      plain.destroy();
      batchNorm(ctx, ctx.tensor(new Float32Array(6).map((_, i) => i), [2, 3]), { training: true }).destroy();
      await ctx.sync();
    } finally {
      record.mockRestore();
    }
    for (const id of ['stats', 'finalize', 'normalize'] as const) {
      for (const [name, entry] of reflectShader(id)) {
        const key = `${id}.${name}`;
        const names = bound.get(key);
        expect(names, `${key} was never dispatched by the forward paths`).toBeDefined();
        expect(names).toEqual(entry.bindings.map((b) => b.name).sort());
      }
    }
  });
});
