import type { UniformLayout } from './reflect.js';

/** Values for a uniform struct, by WGSL member name (`U`: the struct's members). Members left out stay zero (padding). */
export type UniformValues<U extends string = string> = string extends U ? Readonly<Record<string, number>> : { readonly [K in U]?: number };

/**
 * Packs named values into the byte layout that the shader declares. Throws on a name the struct
 * does not have, so a renamed WGSL member cannot silently leave a zero behind.
 */
export function packUniforms(layout: UniformLayout, values: UniformValues): Uint8Array<ArrayBuffer> {
  const bytes = new ArrayBuffer(Math.ceil(layout.size / 16) * 16);
  const view = new DataView(bytes);
  for (const [name, value] of Object.entries(values)) {
    const field = layout.fields.get(name);
    if (!field) throw new Error(`internal: uniform '${layout.binding}' has no member '${name}'`);
    if (field.type === 'f32') view.setFloat32(field.offset, value, true);
    else if (field.type === 'i32') view.setInt32(field.offset, value, true);
    else {
      if (!Number.isInteger(value) || value < 0 || value > 0xffffffff) {
        throw new Error(`internal: uniform member '${name}' = ${value} is not a u32`);
      }
      view.setUint32(field.offset, value, true);
    }
  }
  return new Uint8Array(bytes);
}
