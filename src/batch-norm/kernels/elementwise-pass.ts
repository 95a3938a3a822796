import { planeStride, WORKGROUP_SIZE } from '../../gpu/contracts.js';
import type { Kernel } from '../../gpu/kernel-cache.js';
import type { GpuRuntime } from '../../gpu/runtime.js';
import type { ShaderId } from '../../gpu/shader-manifest.js';
import type { AccessOrder, Stage, StageOverrides, UniformOf, VariantStem, VectorWidth } from '../../gpu/stage.js';
import { bindUniforms, type TensorBinding } from '../../gpu/tensor-binding.js';
import type { UniformValues } from '../../gpu/uniforms.js';
import { grid } from '../../gpu/grid.js';
import { elementwiseShape, vec4Aligned } from './dispatch-shape.js';
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
}

/**
 * Records one elementwise pass into `pass`: picks the vec4 or scalar entry, spreads the tensor over
 * invocations with `elementwiseShape`, fills the view's uniforms (rows, cols, lanes, channels,
 * laneChannelStep, blocksPerRow, planeStride and each tensor's base) and dispatches.
 */
export function encodeElementwise<S extends ShaderId>(
  gpu: GpuRuntime,
  pass: GPUComputePassEncoder,
  g: Geometry,
  p: ElementwisePass<S>,
): void {
  const tensors = Object.entries(p.tensors);
  const vec4 = vec4Aligned(g, ...tensors.map(([, t]) => t.base));
  const width = vec4 ? 4 : 1;
  const shape = elementwiseShape(g, width, gpu.contiguousAccess);
  // Plain Kernel: the pass builds member names (`${name}Base`) at run time; packUniforms checks them.
  const kernel: Kernel = p.stage.variant(gpu.device, p.entry, g.order, width, { ...p.constants, ...shape.constants });
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
  };
  const resources: Record<string, GPUBufferBinding> = { ...p.resources };
  for (const [name, t] of tensors) {
    uniforms[`${name}Base`] = t.base / width;
    resources[vec4 ? name : `${name}Scalar`] = t.resource;
  }
  resources['params'] = bindUniforms(gpu, kernel, uniforms);
  pass.setPipeline(kernel.pipeline);
  pass.setBindGroup(0, gpu.bindGroups.get(kernel, resources));
  const invocations = Math.max(shape.invocations, p.minInvocations ?? 0);
  pass.dispatchWorkgroups(...grid(Math.ceil(invocations / WORKGROUP_SIZE), gpu.device.limits.maxComputeWorkgroupsPerDimension));
}
