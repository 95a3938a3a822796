import { STATS_BLOCK, STATS_PARTIAL_BYTES } from '../../gpu/contracts.js';
import type { VectorWidth } from '../../gpu/stage.js';
import type { GpuRuntime } from '../../gpu/runtime.js';
import { bindUniforms, type TensorBinding } from '../../gpu/tensor-binding.js';
import type { UniformValues } from '../../gpu/uniforms.js';
import { halfFormat, halfWordShape, reductionShape } from './dispatch-shape.js';
import type { HalfDType } from '../../dtype.js';
import type { Geometry } from '../geometry.js';
import { STATS } from './stages/stats.js';

/** What the statistics dispatch leaves for the stage that merges its partials. */
export interface StatsPartials {
  /** The scratch range holding `lanes` partials per channel (stats.wgsl's layout). */
  readonly partials: GPUBufferBinding;
  /** Partials per channel. */
  readonly lanes: number;
}

/**
 * Records stats.wgsl over `x` (bound `width` floats per element) into `pass`: the per-channel
 * partials that finalize.wgsl (forward) or sync_moments (SyncBatchNorm) merge next. One split and
 * one set of uniforms for both, so a shard's partial is bit for bit the forward's. With `half`
 * (width 1), x holds float16 / bfloat16 values: the word entries `*_2h` read them where rows are
 * whole u32 words (bases then in words), the scalar entries otherwise (with HALF_FORMAT; bases
 * in values), as they read float32 through the same word view.
 */
export function encodeStatsPass(
  gpu: GpuRuntime,
  pass: GPUComputePassEncoder,
  g: Geometry,
  x: TensorBinding,
  elementWidth: VectorWidth,
  half: HalfDType | null = null,
): StatsPartials {
  const device = gpu.device;
  // Half precision with rows of whole words: the word kernels (2 values per load, as vec4 for float32).
  const width = half ? (halfWordShape(g) ? 2 : 1) : elementWidth;
  const r = reductionShape(g, width, device.limits.maxComputeWorkgroupsPerDimension, gpu.contiguousAccess);
  const constants = { BLOCK: STATS_BLOCK, ...r.constants, ...(half ? { HALF_FORMAT: halfFormat(half) } : {}) };
  const stats =
    width === 2 ? STATS.kernel(device, `stats_${g.order}2h`, constants) : STATS.variant(device, 'stats', g.order, width, constants);
  const lanes = r.lanes;
  const shared = { rows: r.rows, cols: r.cols, rowStride: r.rowStride, lanes, channels: g.c, base: x.base / width };
  const values: UniformValues =
    g.order === 'cf'
      ? { ...shared, rowsPerBlock: r.rowsPerBlock, colsPerLane: Math.ceil(r.cols / lanes) }
      : { ...shared, stepIndex: lanes * r.cols };
  const partialBytes = g.c * lanes * STATS_PARTIAL_BYTES;
  const partials: GPUBufferBinding = { buffer: gpu.scratch('partials', partialBytes), offset: 0, size: partialBytes };
  pass.setPipeline(stats.pipeline);
  pass.setBindGroup(
    0,
    gpu.bindGroups.get(stats, {
      params: bindUniforms(gpu, stats, values),
      [width === 4 ? 'x' : 'xWords']: x.resource,
      partials,
    }),
  );
  pass.dispatchWorkgroups(...r.workgroups);
  return { partials, lanes };
}
