import { WgslReflect } from 'wgsl_reflect/wgsl_reflect.module.js';
import { shaderSources, type ShaderId } from './shader-sources.js';

/** How one entry point binds one resource, read from the WGSL source. */
export interface ReflectedBinding {
  readonly name: string;
  readonly group: number;
  readonly binding: number;
  readonly type: GPUBufferBindingType;
}

/** One scalar member of a uniform struct: where it goes and how it is stored. */
export interface UniformField {
  readonly offset: number;
  readonly type: 'u32' | 'i32' | 'f32';
}

/** The byte layout of an entry point's uniform struct, read from the WGSL struct declaration. */
export interface UniformLayout {
  readonly binding: string;
  readonly size: number;
  readonly fields: ReadonlyMap<string, UniformField>;
}

/** What TS needs to know about one compute entry point; all of it comes from the shader text. */
export interface ReflectedEntry {
  readonly shader: ShaderId;
  readonly entry: string;
  readonly bindings: readonly ReflectedBinding[];
  readonly overrides: readonly string[];
  /** The entry's `var<uniform>` struct, or null if it has none. */
  readonly uniform: UniformLayout | null;
}

const reflected = new Map<ShaderId, ReadonlyMap<string, ReflectedEntry>>();

function bufferType(resourceType: string, access: string, name: string): GPUBufferBindingType {
  // wgsl_reflect reports var<uniform> as resourceType 0 and var<storage> as 1.
  if (resourceType === '0') return 'uniform';
  if (resourceType === '1') return access === 'read' ? 'read-only-storage' : 'storage';
  throw new Error(`internal: binding '${name}' is not a buffer (resource type ${resourceType})`);
}

/** Reflects every compute entry point of a shader; parsed once per shader and kept. */
export function reflectShader(shader: ShaderId): ReadonlyMap<string, ReflectedEntry> {
  const cached = reflected.get(shader);
  if (cached) return cached;
  const reflect = new WgslReflect(shaderSources[shader]);
  const entries = new Map<string, ReflectedEntry>();
  for (const fn of reflect.entry.compute) {
    const bindings = fn.resources
      .map((r) => ({
        name: r.name,
        group: r.group,
        binding: r.binding,
        type: bufferType(String(r.resourceType), r.access, r.name),
      }))
      .sort((a, b) => a.binding - b.binding);
    const uniforms = fn.resources.filter((r) => String(r.resourceType) === '0');
    if (uniforms.length > 1) throw new Error(`internal: ${shader}.${fn.name} has more than one uniform`);
    const u = uniforms[0];
    let uniform: UniformLayout | null = null;
    if (u) {
      const fields = new Map<string, UniformField>();
      for (const m of u.members ?? []) {
        const t = m.type.name;
        if (t !== 'u32' && t !== 'i32' && t !== 'f32') {
          throw new Error(`internal: uniform field ${m.name} of ${shader} has type ${t}; only scalars are packed`);
        }
        fields.set(m.name, { offset: m.offset, type: t });
      }
      uniform = { binding: u.name, size: u.size, fields };
    }
    entries.set(fn.name, {
      shader,
      entry: fn.name,
      bindings,
      overrides: reflect.overrides.map((o) => o.name),
      uniform,
    });
  }
  reflected.set(shader, entries);
  return entries;
}

/** The reflection of one entry point; throws if the shader has no such compute entry. */
export function reflectEntry(shader: ShaderId, entry: string): ReflectedEntry {
  const found = reflectShader(shader).get(entry);
  if (!found) throw new Error(`internal: shader '${shader}' has no compute entry point '${entry}'`);
  return found;
}
