// SyncBatchNorm: the per-channel stages that turn one shard's statistics into records an
// all-reduce can carry, and merged (whole-batch) statistics back into the constants that the
// ordinary elementwise kernels use. One invocation per channel; every entry point reads what the
// ordinary reduction kernels wrote and writes what the ordinary elementwise kernels read, so the
// data passes themselves are not duplicated.
//
// Algorithm and source: PyTorch's SyncBatchNorm (torch/nn/modules/_functions.py, SyncBatchNorm
// forward / backward): each rank computes its local (count, mean, invstd), all-gathers them,
// merges them (batch_norm_gather_stats_with_counts: Chan's parallel update over the ranks) and
// normalizes with the merged statistics; backward all-reduces sum_dy and sum_dy_xmu and computes
// grad_input with the global count (batch_norm_backward_elemt with count_tensor). We carry M2
// instead of invstd (exact, no eps baked in) and Σdy·x̂ = Σdy·(x − mean)·invstd, which is the
// shard's own grad_weight.
//
// sync_moments: Chan merge of one channel's stats.wgsl partials (as finalize.wgsl does) into the
//   moments record vec4(K, mean − K, M2, bitcast<f32>(count)). A channel whose merge is not finite
//   is scanned (common/channel-scan.wgsl): one holding NaN or ±Inf gets vec4(torch's mean, 0, NaN,
//   count), as the CPU backend and mergeMoments give. The shift K (the channel's first
//   value) travels with the record, so the host recovers mean = K + (mean − K) exactly in float64
//   even for offset data (mean 1e4, std 0.1), where mean alone in float32 would lose the spread.
// sync_forward_constants: from the merged record vec4(K, mean − K, invstd, running-var feed)
//   (the host's float64 merge, each rounded once to float32) writes the channelStats planes
//   that finalize.wgsl writes (PLANE_SHIFT .. PLANE_MEAN_OFFSET and the packed region) and
//   updates the running statistics with the step's batch weights of the mean and the variance
//   (momentum in the convention's meaning, or 1 / num_batches_tracked for a cumulative average,
//   chosen on the host), which follow the C records as one more vec4(meanFactor, varFactor, 0, 0).
//   The record's 4th value is the variance that feeds running_var (unbiased or biased, chosen on
//   the host by the convention's estimator).
// sync_backward_constants: from the merged sums of the whole batch (two planes of C floats: Σdy,
//   then Σdy·x̂, from `recordBase`; the layout of a shard's gradient partial) writes
//   PLANE_MEAN_DY = Σdy / M and PLANE_PROJ_SCALE = Σdy·x̂ / M · invstd (= Σdy(x − mean) / M · invstd²,
//   what backward-elementwise.wgsl reads), M = the global count, and optionally grad_weight =
//   Σdy·x̂ and grad_bias = Σdy of the whole batch.

struct SyncParams {
  channels: u32,
  lanes: u32,           // sync_moments: partials per channel
  flags: u32,           // FLAG_* (prelude)
  planeStride: u32,     // ceil(C / 4): vec4s per plane of channelStats
  _pad3: u32,
  invCount: f32,        // 1 / M, M = values per channel in the whole batch
  recordBase: u32,      // offset of channel 0's record in its binding (vec4 records, or f32 planes)
  weightBase: u32,      // element offsets of the per-channel tensors inside their bindings
  biasBase: u32,
  runningMeanBase: u32,
  runningVarBase: u32,
  gradWeightBase: u32,
  gradBiasBase: u32,
  // sync_moments: the scalar view of x for a channel whose merge is not finite (common/channel-scan.wgsl).
  xRows: u32,
  xCols: u32,
  xRowStride: u32,
  xChannelStride: u32,
  xBase: u32,
  _pad0: u32,
  _pad1: u32,
}

// Flag bits (FLAG_AFFINE, FLAG_UPDATE_RUNNING, FLAG_GRAD_WEIGHT, FLAG_GRAD_BIAS), the channelStats
// planes (PLANE_*) and WORKGROUP_SIZE come from common/prelude.wgsl; plane1 / write_plane /
// write_channel_constants from common/channel-stats-read.wgsl and channel-stats-write.wgsl.

@group(0) @binding(0) var<uniform> params: SyncParams;
@group(0) @binding(1) var<storage, read> partials: array<vec4f>;
@group(0) @binding(2) var<storage, read_write> moments: array<vec4f>;
@group(0) @binding(3) var<storage, read> merged: array<vec4f>;
@group(0) @binding(4) var<storage, read> mergedGrad: array<f32>;
@group(0) @binding(5) var<storage, read> weight: array<f32>;
@group(0) @binding(6) var<storage, read> bias: array<f32>;
@group(0) @binding(7) var<storage, read_write> runningMean: array<f32>;
@group(0) @binding(8) var<storage, read_write> runningVar: array<f32>;
@group(0) @binding(9) var<storage, read_write> channelStats: array<vec4f>;
@group(0) @binding(10) var<storage, read_write> gradWeight: array<f32>;
@group(0) @binding(11) var<storage, read_write> gradBias: array<f32>;
@group(0) @binding(12) var<storage, read> x: array<f32>;

// One channel's moments record, its components placed by the MOMENTS_* indices (prelude).
fn moments_record(k: f32, meanOffset: f32, m2: f32, count: u32) -> vec4f {
  var r: vec4f;
  r[MOMENTS_K] = k;
  r[MOMENTS_MEAN_OFFSET] = meanOffset;
  r[MOMENTS_M2] = m2;
  r[MOMENTS_COUNT] = bitcast<f32>(count);
  return r;
}

// Value i of x, for common/channel-scan.wgsl (SyncBatchNorm takes float32 tensors only).
fn channel_value(i: u32) -> f32 {
  return x[i];
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn sync_moments(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wid: vec3u,
                @builtin(num_workgroups) nwg: vec3u) {
  let c = invocation(wid, nwg, lid);
  if (c >= params.channels) { return; }
  let merged = chan_merge(c * params.lanes, params.lanes);
  let k = merged.k;
  let mean = merged.meanOffset;
  let m2 = merged.m2;
  let n = merged.n;
  var record = moments_record(k, mean, m2, n);
  if (!(is_finite(k) && is_finite(mean) && is_finite(m2))) {
    let special = scan_special_values(ChannelView(params.xRows, params.xCols, params.xRowStride, params.xChannelStride, params.xBase), c);
    // A NaN or ±Inf: the mean travels whole in K (so K + (mean − K) is not Inf − Inf), M2 is NaN.
    if (holds_non_finite(special)) { record = moments_record(non_finite_mean(special), 0.0, f32_nan(), n); }
  }
  moments[params.recordBase + c] = record;
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn sync_forward_constants(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wid: vec3u,
                          @builtin(num_workgroups) nwg: vec3u) {
  let c = invocation(wid, nwg, lid);
  if (c >= params.channels) { return; }
  let m = merged[params.recordBase + c];
  let k = m[MERGED_K];
  let meanOffset = m[MERGED_MEAN_OFFSET];
  let invstd = m[MERGED_INVSTD];
  var w = 1.0;
  var b = 0.0;
  if ((params.flags & FLAG_AFFINE) != 0u) {
    w = weight[params.weightBase + c];
    b = bias[params.biasBase + c];
  }
  let scale = w * invstd;
  let shiftedBias = b - meanOffset * scale;
  write_channel_constants(c, k, scale, shiftedBias, k + meanOffset, invstd, meanOffset);
  if ((params.flags & FLAG_UPDATE_RUNNING) != 0u) {
    // The step's batch weights (mean, variance) travel in the vec4 after the C records (not in
    // this uniform, whose content-keyed cache would otherwise get a new buffer each step of a
    // cumulative average).
    let f = merged[params.recordBase + params.channels].xy;
    let rm = params.runningMeanBase + c;
    let rv = params.runningVarBase + c;
    runningMean[rm] = (1.0 - f.x) * runningMean[rm] + f.x * (k + meanOffset);
    runningVar[rv] = (1.0 - f.y) * runningVar[rv] + f.y * m[MERGED_RUNNING_VAR];
  }
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn sync_backward_constants(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wid: vec3u,
                           @builtin(num_workgroups) nwg: vec3u) {
  let c = invocation(wid, nwg, lid);
  if (c >= params.channels) { return; }
  let sumDy = mergedGrad[params.recordBase + GRAD_PLANE_SUM_DY * params.channels + c];
  let sumDyXhat = mergedGrad[params.recordBase + GRAD_PLANE_SUM_DY_XHAT * params.channels + c];
  let invstd = plane1(PLANE_INVSTD, c);
  write_plane(PLANE_MEAN_DY, c, sumDy * params.invCount);
  write_plane(PLANE_PROJ_SCALE, c, sumDyXhat * params.invCount * invstd);
  if ((params.flags & FLAG_GRAD_WEIGHT) != 0u) {
    gradWeight[params.gradWeightBase + c] = sumDyXhat;
  }
  if ((params.flags & FLAG_GRAD_BIAS) != 0u) {
    gradBias[params.gradBiasBase + c] = sumDy;
  }
}
