import type { ShaderId } from './shader-manifest.js';

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

/** A buffer binding type in {@link SerializedShader}: `u` uniform, `r` read-only storage, `s` storage. */
export type BindingTypeCode = 'u' | 'r' | 's';

const BINDING_TYPES: Readonly<Record<BindingTypeCode, GPUBufferBindingType>> = { u: 'uniform', r: 'read-only-storage', s: 'storage' };

/**
 * One shader module's reflection as plain data, each fact once and tersely (it ships in every
 * bundle that dispatches the shader): what build/reflect-wgsl.ts produces at build time and the
 * `virtual:bn-shaders` module carries into the library.
 */
export interface SerializedShader {
  /** The module's `override` names. */
  readonly overrides: readonly string[];
  /** Every buffer binding by WGSL name: [group, binding, type code]. */
  readonly bindings: Readonly<Record<string, readonly [number, number, BindingTypeCode]>>;
  /**
   * Every uniform struct by binding name: its size and its members in order, each `name` (a u32)
   * or `name:f32` / `name:i32`. Members are scalars, so member i sits at byte 4·i.
   */
  readonly uniforms: Readonly<Record<string, { readonly size: number; readonly fields: readonly string[] }>>;
  /** Each compute entry point's bindings, by name. */
  readonly entries: Readonly<Record<string, readonly string[]>>;
}

/** The byte layout of a serialized uniform struct's members (see {@link SerializedShader.uniforms}). */
export function uniformFields(fields: readonly string[]): Map<string, UniformField> {
  return new Map(
    fields.map((f, i) => {
      const [name = '', type = 'u32'] = f.split(':');
      return [name, { offset: 4 * i, type: type as UniformField['type'] }];
    }),
  );
}

/**
 * One shader module as the library carries it: its id, its composed WGSL and its reflection. Each
 * is a separate export of `virtual:bn-shaders`, imported by the stage descriptor that dispatches
 * it (src/batch-norm/kernels/stages/); `S` carries the module's literal id, from which the
 * descriptor takes its entry-point, override and uniform-member types (shader-types.ts).
 */
export interface ShaderSpec<S extends ShaderId = ShaderId> {
  readonly id: S;
  readonly code: string;
  readonly reflection: SerializedShader;
}

const reflected = new Map<ShaderId, ReadonlyMap<string, ReflectedEntry>>();

function expandEntry(shader: ShaderId, s: SerializedShader, entry: string, names: readonly string[]): ReflectedEntry {
  const bindings: ReflectedBinding[] = names
    .map((name) => {
      const b = s.bindings[name];
      if (!b) throw new Error(`internal: ${shader}.${entry} binding '${name}' was not reflected`);
      return { name, group: b[0], binding: b[1], type: BINDING_TYPES[b[2]] };
    })
    .sort((a, b) => a.binding - b.binding);
  const uniforms = bindings.filter((b) => b.type === 'uniform');
  if (uniforms.length > 1) throw new Error(`internal: ${shader}.${entry} has more than one uniform`);
  const u = uniforms[0] && s.uniforms[uniforms[0].name];
  const uniform = uniforms[0] && u ? { binding: uniforms[0].name, size: u.size, fields: uniformFields(u.fields) } : null;
  return { shader, entry, bindings, overrides: s.overrides, uniform };
}

/**
 * Every compute entry point of a shader, from the layouts reflected at build time (no WGSL parser
 * ships in the library); expanded once per shader and kept.
 */
export function reflectShader(spec: ShaderSpec): ReadonlyMap<string, ReflectedEntry> {
  const shader = spec.id;
  const cached = reflected.get(shader);
  if (cached) return cached;
  const s = spec.reflection;
  const entries = new Map<string, ReflectedEntry>();
  for (const [entry, names] of Object.entries(s.entries)) entries.set(entry, expandEntry(shader, s, entry, names));
  reflected.set(shader, entries);
  return entries;
}

/** The reflection of one entry point; throws if the shader has no such compute entry. */
export function reflectEntry(spec: ShaderSpec, entry: string): ReflectedEntry {
  const found = reflectShader(spec).get(entry);
  if (!found) throw new Error(`internal: shader '${spec.id}' has no compute entry point '${entry}'`);
  return found;
}
