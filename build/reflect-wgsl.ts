import { WgslReflect } from 'wgsl_reflect/wgsl_reflect.module.js';
import type { BindingTypeCode, SerializedShader } from '../src/gpu/reflect.js';

function bufferType(resourceType: string, access: string, name: string): BindingTypeCode {
  // wgsl_reflect reports var<uniform> as resourceType 0 and var<storage> as 1.
  if (resourceType === '0') return 'u';
  if (resourceType === '1') return access === 'read' ? 'r' : 's';
  throw new Error(`binding '${name}' is not a buffer (resource type ${resourceType})`);
}

/**
 * Reflects one composed WGSL module with wgsl_reflect: its overrides, each buffer binding once
 * (a WGSL name is module-wide), each uniform struct's byte layout once, and per compute entry
 * point the names of the bindings it uses. Runs at build time (build/wgsl-shaders.ts), never in
 * the library; src/gpu/reflect.ts expands it into per-entry layouts, and test/wgsl-static.test.ts
 * checks that expansion against wgsl_reflect's own per-entry view.
 */
export function reflectWgsl(label: string, source: string): SerializedShader {
  const reflect = new WgslReflect(source);
  const bindings: Record<string, [number, number, BindingTypeCode]> = {};
  const uniforms: Record<string, { size: number; fields: string[] }> = {};
  const entries: Record<string, string[]> = {};
  for (const fn of reflect.entry.compute) {
    for (const r of fn.resources) {
      const type = bufferType(String(r.resourceType), r.access, r.name);
      bindings[r.name] = [r.group, r.binding, type];
      if (type !== 'u') continue;
      const fields: string[] = [];
      for (const [i, m] of (r.members ?? []).entries()) {
        const t = m.type.name;
        if (t !== 'u32' && t !== 'i32' && t !== 'f32') {
          throw new Error(`uniform field ${m.name} of ${label} has type ${t}; only scalars are packed`);
        }
        // The library places member i at 4·i (src/gpu/reflect.ts, uniformFields): true of scalars.
        if (m.offset !== 4 * i) throw new Error(`uniform field ${m.name} of ${label} is at byte ${m.offset}, not ${4 * i}`);
        fields.push(t === 'u32' ? m.name : `${m.name}:${t}`);
      }
      uniforms[r.name] = { size: r.size, fields };
    }
    entries[fn.name] = fn.resources.map((r) => r.name);
  }
  return { overrides: reflect.overrides.map((o) => o.name), bindings, uniforms, entries };
}
