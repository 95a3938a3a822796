import { SHADER_STAGE_COMPUTE } from './constants.js';
import { WORKGROUP_SIZE } from './contracts.js';
import { reflectEntry, type ReflectedEntry, type ShaderSpec } from './reflect.js';
import type { ShaderId } from './shader-manifest.js';

/**
 * A compiled compute entry point with its explicit bind-group layout. `U` names the members of its
 * uniform struct where a stage descriptor (stage.ts) knows them, so packing an unknown one is a
 * type error; plain `Kernel` accepts any name (and packUniforms still throws at run time).
 */
export interface Kernel<U extends string = string> {
  /** Cache key: shader id, entry point and override constants; never a runtime shape. */
  readonly key: string;
  readonly entry: ReflectedEntry;
  readonly pipeline: GPUComputePipeline;
  readonly layout: GPUBindGroupLayout;
  /**
   * Type only, never set: carries `U` so that bindUniforms infers it from the kernel. A method, so
   * bivariant: a typed kernel still passes where a plain `Kernel` is expected, and back.
   */
  uniformMembers?(member: U): void;
}

/** Override constants by WGSL `override` name. Only values that change generated code go here. */
export type OverrideConstants = Readonly<Record<string, number>>;

// Per device, so a lost or destroyed device takes its pipelines with it.
const kernelsByDevice = new WeakMap<GPUDevice, Map<string, Kernel>>();
const modulesByDevice = new WeakMap<GPUDevice, Map<ShaderId, GPUShaderModule>>();

function shaderModule(device: GPUDevice, spec: ShaderSpec): GPUShaderModule {
  const shader = spec.id;
  let modules = modulesByDevice.get(device);
  if (!modules) {
    modules = new Map();
    modulesByDevice.set(device, modules);
  }
  let module = modules.get(shader);
  if (!module) {
    module = device.createShaderModule({ label: `bn.${shader}.module`, code: spec.code });
    modules.set(shader, module);
  }
  return module;
}

/**
 * Returns the pipeline for `shader`'s compute entry `entry` specialised by `specialization`,
 * compiling it on first use per device. `WORKGROUP_SIZE` is always set here from the TS constant
 * that the dispatch arithmetic uses (the prelude gives it no default). The bind-group layout is
 * built from the shader's own reflected bindings, so TS never restates them.
 */
export function getKernel(device: GPUDevice, spec: ShaderSpec, entry: string, specialization: OverrideConstants = {}): Kernel {
  const shader = spec.id;
  if ('WORKGROUP_SIZE' in specialization) throw new Error('internal: WORKGROUP_SIZE is set by getKernel only');
  const constants: OverrideConstants = { ...specialization, WORKGROUP_SIZE };
  const names = Object.keys(constants).sort();
  const key = `${shader}.${entry}|${names.map((n) => `${n}=${constants[n]}`).join(',')}`;
  let kernels = kernelsByDevice.get(device);
  if (!kernels) {
    kernels = new Map();
    kernelsByDevice.set(device, kernels);
  }
  const cached = kernels.get(key);
  if (cached) return cached;

  const reflected = reflectEntry(spec, entry);
  for (const n of names) {
    if (!reflected.overrides.includes(n)) throw new Error(`internal: ${shader} has no override '${n}'`);
  }
  const label = `bn.${shader}.${entry}`;
  const layout = device.createBindGroupLayout({
    label: `${label}.layout`,
    entries: reflected.bindings.map((b) => ({
      binding: b.binding,
      visibility: SHADER_STAGE_COMPUTE,
      buffer: { type: b.type },
    })),
  });
  const pipeline = device.createComputePipeline({
    label: `${label}.pipeline`,
    layout: device.createPipelineLayout({ label: `${label}.pipelineLayout`, bindGroupLayouts: [layout] }),
    compute: { module: shaderModule(device, spec), entryPoint: entry, constants: { ...constants } },
  });
  const kernel: Kernel = { key, entry: reflected, pipeline, layout };
  kernels.set(key, kernel);
  return kernel;
}
