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
// sync_forward_merged: as sync_forward_constants, from a moments record merged on the GPU
//   (sync-merge.wgsl: binary64 mean and M2 and the count, bound as `mergedF64`;
//   SyncBatchNorm.encodeForward), so no host value of the step is needed. It derives what the
//   host's forward uploads, with the host's float64 arithmetic emulated (common/f64.wgsl) and each
//   result rounded to float32 as that upload rounds it: biasedVar = M2 / N, invstd =
//   1 / sqrt(biasedVar + eps) (eps as the host's binary64 bits), K = fround(mean), mean − K, the
//   running_var feed biasedVar · (N / max(N − 1, 1)) (or biasedVar under FLAG_BIASED_RUNNING_VAR),
//   then runs sync_forward_constants' float32 code on them: the constants and running statistics
//   are the host path's bit for bit. The step's factors are the uniforms meanFactor / varFactor
//   (fixed momenta, so the content-keyed uniform stays one buffer) or, under FLAG_CUMULATIVE,
//   1 / num_batches_tracked from the counter (as finalize.wgsl: read slot counterSlot, channel 0
//   writes the incremented value to the other slot), a binary64 quotient rounded to float32 like
//   the host's Math.fround(1 / n). A whole batch with fewer than `minCount` values per channel
//   cannot be refused on the GPU: its channels get NaN statistics (NaN outputs) and running_mean /
//   running_var are left as they were.
// Both forward-constant entries bump the counter when they update the running statistics, so the
//   host path and the encoder path may alternate.
// sync_backward_constants: from the merged sums of the whole batch (two planes of C floats: Σdy,
//   then Σdy·x̂, from `recordBase`; the layout of a shard's gradient partial) writes
//   PLANE_MEAN_DY = Σdy / M and PLANE_PROJ_SCALE = Σdy·x̂ / M · invstd (= Σdy(x − mean) / M · invstd²,
//   what backward-elementwise.wgsl reads), M = the global count (1/M the uniform invCount, or,
//   when countFromRecord is set, 1/M from the count of the GPU-merged record `mergedF64`, as a
//   binary64 quotient rounded to float32: the host's uniform), and optionally grad_weight = Σdy·x̂
//   and grad_bias = Σdy of the whole batch.

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
  // sync_forward_merged (and the counter bump of sync_forward_constants):
  counterSlot: u32,     // 0 or 1: the counter slot holding num_batches_tracked before this step
  minCount: u32,        // fewer merged values per channel than this: NaN statistics, no update
  eps: f32,
  meanFactor: f32,      // batch weights of the running update unless FLAG_CUMULATIVE
  varFactor: f32,
  varCumulative: u32,   // 1: running_var's weight is the cumulative factor too
  // sync_backward_constants: 1/M from the merged record's count instead of invCount.
  countFromRecord: u32,
  epsLo: u32,           // sync_forward_merged: eps as binary64 bits (the host's float64 eps)
  epsHi: u32,
  _pad6: u32,
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
@group(0) @binding(13) var<storage, read_write> counter: array<u32>;
// sync_forward_merged / sync_backward_constants: the GPU-merged moments, two vec4u per channel
// (binary64 mean and M2 bits, then the count), see sync-merge.wgsl.
@group(0) @binding(14) var<storage, read> mergedF64: array<vec4u>;

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
  write_forward_constants(c, k, meanOffset, invstd);
  if ((params.flags & FLAG_UPDATE_RUNNING) != 0u) {
    bump_counter(c);
    // The step's batch weights (mean, variance) travel in the vec4 after the C records (not in
    // this uniform, whose content-keyed cache would otherwise get a new buffer each step of a
    // cumulative average).
    let f = merged[params.recordBase + params.channels].xy;
    update_running(c, f, k + meanOffset, m[MERGED_RUNNING_VAR]);
  }
}

// The channelStats planes that finalize.wgsl writes, from merged statistics.
fn write_forward_constants(c: u32, k: f32, meanOffset: f32, invstd: f32) {
  var w = 1.0;
  var b = 0.0;
  if ((params.flags & FLAG_AFFINE) != 0u) {
    w = weight[params.weightBase + c];
    b = bias[params.biasBase + c];
  }
  let scale = w * invstd;
  let shiftedBias = b - meanOffset * scale;
  write_channel_constants(c, k, scale, shiftedBias, k + meanOffset, invstd, meanOffset);
}

// num_batches_tracked + 1 into the other counter slot (channel 0 only); returns it.
fn bump_counter(c: u32) -> u32 {
  let tracked = counter[params.counterSlot] + 1u;
  if (c == 0u) { counter[1u - params.counterSlot] = tracked; }
  return tracked;
}

// running = (1 − f)·running + f·batch, f = (mean weight, variance weight).
fn update_running(c: u32, f: vec2f, mean: f32, varianceFeed: f32) {
  let rm = params.runningMeanBase + c;
  let rv = params.runningVarBase + c;
  runningMean[rm] = (1.0 - f.x) * runningMean[rm] + f.x * mean;
  runningVar[rv] = (1.0 - f.y) * runningVar[rv] + f.y * varianceFeed;
}

// binary64 bits (lo, hi) rounded to float32, specials included (a NaN becomes the canonical one).
fn f64_bits_to_f32(b: vec2u) -> f32 {
  if ((b.y & F64_INF_HI) == F64_INF_HI) {
    if ((b.y & 0xfffffu) != 0u || b.x != 0u) { return f32_nan(); }
    return f32_inf((b.y & 0x80000000u) != 0u);
  }
  return f64_to_f32(f64_from_bits(b));
}

fn f64_bits_finite(b: vec2u) -> bool {
  return (b.y & F64_INF_HI) != F64_INF_HI;
}

// 1 / n in binary64, rounded to float32: what the host gets from Math.fround(1 / n).
fn recip_f32_of_f64(n: u32) -> f32 {
  return f64_to_f32(f64_div(f64_from_u32(1u), f64_from_u32(n)));
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn sync_forward_merged(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wid: vec3u,
                       @builtin(num_workgroups) nwg: vec3u) {
  let c = invocation(wid, nwg, lid);
  if (c >= params.channels) { return; }
  // The GPU-merged record (sync-merge.wgsl): binary64 mean and M2, and the count.
  let w = mergedF64[2u * c];
  let n = mergedF64[2u * c + 1u].x;
  let enough = n >= params.minCount && n > 0u;
  let meanBits = w.xy;
  let m2Bits = w.zw;
  // SyncBatchNorm.forward's host arithmetic, in emulated binary64, each result rounded to float32
  // as its Float32Array upload rounds it: biasedVar = M2 / N; invstd = 1 / sqrt(biasedVar + eps);
  // K = fround(mean); mean − K; the running_var feed biasedVar · (N / max(N − 1, 1)) (or biasedVar).
  var k = f64_bits_to_f32(meanBits);
  var meanOffset = 0.0;
  var invstd = f32_nan();
  var feed = f32_nan();
  let biased = (params.flags & FLAG_BIASED_RUNNING_VAR) != 0u;
  if (f64_bits_finite(meanBits)) {
    let mean = f64_from_bits(meanBits);
    if (is_finite(k)) { meanOffset = f64_to_f32(f64_add(mean, f64_neg(f64_from_f32(k)))); }
  }
  if (f64_bits_finite(meanBits) && f64_bits_finite(m2Bits) && n > 0u) {
    let count = f64_from_u32(n);
    let biasedVar = f64_div(f64_from_bits(m2Bits), count);
    let sum = f64_add(biasedVar, f64_from_bits(vec2u(params.epsLo, params.epsHi)));
    if (f64_is_zero(sum)) {
      invstd = f32_inf(false);
    } else if (!sum.negative) {
      invstd = f64_to_f32(f64_div(f64_from_u32(1u), f64_sqrt(sum)));
    }
    var unbiased = biasedVar;
    if (!biased) { unbiased = f64_mul(biasedVar, f64_div(count, f64_from_u32(max(n - 1u, 1u)))); }
    feed = f64_to_f32(unbiased);
  } else if (f64_bits_finite(meanBits) && n > 0u && (m2Bits.y == F64_INF_HI && m2Bits.x == 0u)) {
    // M2 = +Inf (a shard's overflow): biasedVar = +Inf, invstd = 0, feed = +Inf, as in float64.
    invstd = 0.0;
    feed = f32_inf(false);
  }
  if (!enough) {
    k = f32_nan();
    meanOffset = 0.0;
    invstd = f32_nan();
  }
  write_forward_constants(c, k, meanOffset, invstd);
  if ((params.flags & FLAG_UPDATE_RUNNING) != 0u) {
    let tracked = bump_counter(c);
    var f = vec2f(params.meanFactor, params.varFactor);
    if ((params.flags & FLAG_CUMULATIVE) != 0u) {
      let cumulative = recip_f32_of_f64(tracked);
      f = vec2f(cumulative, select(params.varFactor, cumulative, params.varCumulative != 0u));
    }
    // The same update as sync_forward_constants, on the same float32 values.
    if (enough) { update_running(c, f, k + meanOffset, feed); }
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
  var invCount = params.invCount;
  if (params.countFromRecord != 0u) { invCount = recip_f32_of_f64(max(mergedF64[2u * c + 1u].x, 1u)); }
  write_plane(PLANE_MEAN_DY, c, sumDy * invCount);
  write_plane(PLANE_PROJ_SCALE, c, sumDyXhat * invCount * invstd);
  if ((params.flags & FLAG_GRAD_WEIGHT) != 0u) {
    gradWeight[params.gradWeightBase + c] = sumDyXhat;
  }
  if ((params.flags & FLAG_GRAD_BIAS) != 0u) {
    gradBias[params.gradBiasBase + c] = sumDy;
  }
}
