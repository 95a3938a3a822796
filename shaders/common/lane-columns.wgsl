// Channels-first column split of the per-channel reductions (stats.wgsl, backward-reduce.wgsl).
// Composed (src/gpu/shader-manifest.ts) into shaders that declare `override CONTIGUOUS: bool` and a
// uniform `params` with `cols`, `lanes` and `colsPerLane`.

// [first column, end column, step] of channels-first invocation p: columns p, p + lanes, ...
// (coalesced, GPUs), or with CONTIGUOUS (fallback adapters) [p·colsPerLane, (p + 1)·colsPerLane).
fn lane_columns(p: u32) -> vec3u {
  if (CONTIGUOUS) {
    let first = p * params.colsPerLane;
    return vec3u(first, min(first + params.colsPerLane, params.cols), 1u);
  }
  return vec3u(p, params.cols, params.lanes);
}
