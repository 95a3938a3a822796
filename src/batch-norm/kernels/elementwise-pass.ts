import { planeStride, WORKGROUP_SIZE } from '../../gpu/contracts.js';
import type { HalfDType } from '../../dtype.js';
import { useNativeF16 } from '../../gpu/features.js';
import { getKernel, type Kernel } from '../../gpu/kernel-cache.js';
import type { ShaderSpec } from '../../gpu/reflect.js';
import type { GpuRuntime } from '../../gpu/runtime.js';
import type { ShaderId } from '../../gpu/shader-manifest.js';
import type { AccessOrder, Stage, StageOverrides, UniformOf, VariantStem, VectorWidth } from '../../gpu/stage.js';
import { bindUniforms, type TensorBinding } from '../../gpu/tensor-binding.js';
import type { UniformValues } from '../../gpu/uniforms.js';
import { grid } from '../../gpu/grid.js';
import { elementwiseShape, halfAnyLanes, halfFormat, halfWordShape, vec4Aligned, type ElementwiseShape } from './dispatch-shape.js';
import type { Geometry } from '../geometry.js';

/** One elementwise dispatch (normalize.wgsl, backward-elementwise.wgsl) over the rows × cols view of a tensor. */
export interface ElementwisePass<S extends ShaderId> {
  readonly stage: Stage<S>;
  /** Entry-point stem: the entry is `${entry}_${order}${width}`, e.g. `normalize_cf4`. */
  readonly entry: VariantStem<S>;
  /**
   * The tensors walked element by element, by the WGSL name of their vec4 view. `${name}Scalar` is
   * the scalar view bound when any base or row is not vec4-aligned, and the uniform `${name}Base`
   * receives the binding's first element in bound elements.
   */
  readonly tensors: Readonly<Record<string, TensorBinding>>;
  /** The kernel's other uniform members (flags, per-channel offsets, ...). */
  readonly uniforms: UniformValues<UniformOf<S, `${VariantStem<S>}_${AccessOrder}${VectorWidth}`>>;
  /** The kernel's other bindings (channelStats, per-channel tensors). */
  readonly resources: Readonly<Record<string, GPUBufferBinding>>;
  /** Override constants besides the access pattern's. Default: none. */
  readonly constants?: StageOverrides<S>;
  /** Invocations the kernel needs even when the tensor is smaller (normalize records C channels in eval). Default: 0. */
  readonly minInvocations?: number;
  /**
   * The walked tensors hold float16 / bfloat16 values (common/half.wgsl): the `*2h` / `anyh`
   * entries, each tensor bound as `${name}Half`, bases in u32 words. Default null (float32).
   */
  readonly half?: HalfDType | null;
  /**
   * The stage's native-f16 module (`enable f16;`, entries `${entry}_${order}2n`, tensors bound as
   * `${name}F16`), used for float16 tensors with even rows when the device has `shader-f16`.
   * Default none: the packed entries everywhere.
   */
  readonly nativeF16Stage?: { readonly shader: ShaderSpec };
}

/** The kernel an elementwise pass dispatches and how its walked tensors are bound to it. */
interface ElementwiseKernel {
  readonly kernel: Kernel;
  readonly shape: ElementwiseShape;
  /** Bound elements per unit of the `${name}Base` uniforms: 4 (vec4), 1 (scalar) or 2 (u32 words of halves). */
  readonly unit: number;
  /** The WGSL name of a walked tensor's view (`x`, `xScalar`, `xHalf`, `xF16`). */
  readonly view: (name: string) => string;
  /** Uniform members only this kind of entry reads. */
  readonly uniforms?: Readonly<Record<string, number>>;
}

/**
 * Records one elementwise pass into `pass`: picks the entry (vec4 or scalar for float32, a word
 * walk or `anyh` for half precision), spreads the tensor over invocations with
 * `elementwiseShape`, fills the view's uniforms (rows, cols, lanes, channels, laneChannelStep,
 * blocksPerRow, planeStride and each tensor's base) and dispatches.
 */
export function encodeElementwise<S extends ShaderId>(
  gpu: GpuRuntime,
  pass: GPUComputePassEncoder,
  g: Geometry,
  p: ElementwisePass<S>,
): void {
  const tensors = Object.entries(p.tensors);
  const k = p.half ? halfKernel(gpu, g, p, p.half) : floatKernel(gpu, g, p, tensors);
  const { kernel, shape } = k;
  const uniforms: Record<string, number> = {
    ...p.uniforms,
    rows: shape.rows,
    cols: shape.cols,
    lanes: shape.lanes,
    channels: g.c,
    laneChannelStep: shape.laneChannelStep,
    planeStride: planeStride(g.c),
    blocksPerRow: shape.blocksPerRow,
    runLength: shape.runLength,
    ...k.uniforms,
  };
  const resources: Record<string, GPUBufferBinding> = { ...p.resources };
  for (const [name, t] of tensors) {
    uniforms[`${name}Base`] = t.base / k.unit;
    resources[k.view(name)] = t.resource;
  }
  resources['params'] = bindUniforms(gpu, kernel, uniforms);
  pass.setPipeline(kernel.pipeline);
  pass.setBindGroup(0, gpu.bindGroups.get(kernel, resources));
  const invocations = Math.max(shape.invocations, p.minInvocations ?? 0);
  pass.dispatchWorkgroups(...grid(Math.ceil(invocations / WORKGROUP_SIZE), gpu.device.limits.maxComputeWorkgroupsPerDimension));
}

/** float32 tensors: the vec4 entry when every base and row is vec4-aligned, else the scalar one. */
function floatKernel<S extends ShaderId>(
  gpu: GpuRuntime,
  g: Geometry,
  p: ElementwisePass<S>,
  tensors: ReadonlyArray<readonly [string, TensorBinding]>,
): ElementwiseKernel {
  const vec4 = vec4Aligned(g, ...tensors.map(([, t]) => t.base));
  const width = vec4 ? 4 : 1;
  const shape = elementwiseShape(g, width, gpu.contiguousAccess);
  // Plain Kernel: the pass builds member names (`${name}Base`) at run time; packUniforms checks them.
  const kernel: Kernel = p.stage.variant(gpu.device, p.entry, g.order, width, { ...p.constants, ...shape.constants });
  return { kernel, shape, unit: width, view: (name) => (vec4 ? name : `${name}Scalar`) };
}

/**
 * float16 / bfloat16 tensors: one u32 word (two values) per step, so no two invocations write one
 * word. Even rows (channels-first spatial, channels-last C) take the vec4 kernels' walks over words
 * (`*_cf2h`, `*_cl2h`, or the native-f16 `*_2n`); odd ones the `*_anyh` entry.
 */
function halfKernel<S extends ShaderId>(gpu: GpuRuntime, g: Geometry, p: ElementwisePass<S>, half: HalfDType): ElementwiseKernel {
  const words = halfWordShape(g);
  const native = words && p.nativeF16Stage !== undefined && useNativeF16(gpu.device.features, half);
  // Entries named at run time (`*_2h`, `*_anyh`, `*_2n`): a plain Kernel, packUniforms checks the names.
  const shader: ShaderSpec = native && p.nativeF16Stage ? p.nativeF16Stage.shader : p.stage.shader;
  // The native entries read no HALF_FORMAT: f16 is their storage type.
  // With exactOptionalPropertyTypes a set override is a number, never undefined.
  const stageConstants = (p.constants ?? {}) as Readonly<Record<string, number>>;
  const constants: Record<string, number> = native ? { ...stageConstants } : { ...stageConstants, HALF_FORMAT: halfFormat(half) };
  let entry: string;
  let shape: ElementwiseShape;
  if (words) {
    // The native channels-last entry has only the coalesced walk (it runs on hardware GPUs).
    shape = elementwiseShape(g, 2, gpu.contiguousAccess && !(native && g.order === 'cl'));
    Object.assign(constants, shape.constants);
    entry = `${p.entry}_${g.order}${native ? '2n' : '2h'}`;
  } else {
    const lanes = halfAnyLanes(g);
    entry = `${p.entry}_anyh`;
    shape = { rows: 0, cols: 0, lanes, laneChannelStep: 0, blocksPerRow: 0, runLength: 0, invocations: lanes, constants: {} };
  }
  const suffix = native ? 'F16' : 'Half';
  return {
    kernel: getKernel(gpu.device, shader, entry, constants),
    shape,
    unit: 2,
    view: (name) => `${name}${suffix}`,
    uniforms: { halfSpatial: g.order === 'cf' ? g.s : 1, halfSize: g.n * g.c * g.s },
  };
}
