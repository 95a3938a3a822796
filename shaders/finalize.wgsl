// Batch-norm statistics, stage 2 of 3: one invocation per channel turns statistics into the
// per-channel constants that the elementwise stages need, and updates the running statistics.
//
// finalize_train merges the channel's partials from stats.wgsl with Chan, Golub & LeVeque's
// pairwise update (n = na + nb; d = mb - ma; mean = ma + d * nb / n; M2 = M2a + M2b + d² na nb / n),
// exactly as PyTorch's CUDA batch norm merges per-thread Welford states. Then, like
// torch.nn.functional.batch_norm in training mode:
//   biased var   = M2 / n                      (used to normalize)
//   unbiased var = M2 / max(n - 1, 1)          (used for running_var; the host never sends n = 1
//                                               for PyTorch, TensorFlow's fused kernel clamps so)
//   factor       = momentum, or 1 / num_batches_tracked when momentum is None (cumulative average)
//   running      = (1 - factor) * running + factor * batch
// Other frameworks' conventions reach this shader only as numbers: the host turns their momentum
// into the batch weights `momentum` (mean) and `varianceMomentum` (variance, MATLAB's
// VarianceDecay), and FLAG_BIASED_RUNNING_VAR feeds running_var the biased variance M2 / n
// (Keras 3, ONNX, numpy-ml).
// (Evaluation needs no finalize: normalize.wgsl derives its constants from the running stats.)
//
// Output: planes PLANE_SHIFT (K), PLANE_SCALE (weight * invstd), PLANE_SHIFTED_BIAS
// (bias - (mean - K) * scale), PLANE_MEAN, PLANE_INVSTD and PLANE_MEAN_OFFSET (mean - K) of
// `channelStats`, and its packed vec4(K, scale, shiftedBias, 0) per channel (layout: common/prelude.wgsl).
// Plane PLANE_BATCH_VAR gets the biased batch variance, which no later stage reads: the host copies
// planes PLANE_MEAN, PLANE_INVSTD and PLANE_BATCH_VAR out when the caller asks for batch statistics.
// So the normalize stage computes y = (x - K) * scale + shiftedBias: the subtraction x - K is exact
// for data near its mean, which keeps offset channels (mean 1e4, std 0.1) accurate in float32.
//
// NaN, Inf and overflow (PyTorch semantics, policy in the README's "NaN and Inf"). WGSL may assume
// that no value is NaN or Inf, so channels are classified by bits (common/non-finite.wgsl):
// finalize_train handles a channel whose statistics, parameters and running statistics are all
// ordinary (below 2^60 in magnitude) with the plain formulas, and appends any other channel to a
// queue whose header is the indirect dispatch of finalize_general (zero workgroups on ordinary
// data, so software adapters, which run untaken branches, never pay for the general path).
// finalize_general re-reads a queued channel's values (x is bound read-only, its geometry is in
// the uniforms) when its merged statistics are not finite: either it holds a NaN or an Inf, or its
// finite values overflowed the float32 sums (|x − K| beyond ~1e19):
//   NaN or Inf in the channel: mean = NaN if it holds a NaN or both +Inf and −Inf, else ±Inf;
//     variance and invstd NaN (so the whole channel's output is NaN, as torch gives), K = mean.
//   finite values: mean and M2 are recomputed scaled by 2^−e (2^e ≤ max|x| < 2^(e+1)), a
//     corrected two-pass over values below 2 in magnitude, so invstd and the output are right,
//     and only a variance that float32 cannot hold becomes +Inf. K = mean and meanOffset = 0, so
//     the normalize stage forms x − mean directly.
// Every later step of the general path uses the IEEE helpers, so a NaN or Inf in the statistics,
// the parameters or the running buffers reaches the outputs exactly as in torch.
//
// num_batches_tracked lives in counter[0] / counter[1]; each training step reads slot
// `counterSlot` and channel 0 writes the incremented value to the other slot, so no two
// invocations of one dispatch touch the same word and consecutive steps may be encoded together.

struct FinalizeParams {
  channels: u32,
  lanes: u32,         // partials per channel
  flags: u32,         // FLAG_AFFINE | FLAG_UPDATE_RUNNING | FLAG_CUMULATIVE | FLAG_BIASED_RUNNING_VAR (common/prelude.wgsl)
  counterSlot: u32,   // 0 or 1
  eps: f32,
  momentum: f32,
  weightBase: u32,    // element offsets of each per-channel tensor inside its binding
  biasBase: u32,
  runningMeanBase: u32,
  runningVarBase: u32,
  planeStride: u32,   // ceil(C / 4): vec4s per plane of channelStats
  varianceMomentum: f32, // batch weight for running_var (equals momentum unless set apart)
  // Scalar view of x for the rescan: value j < xCols of segment r < xRows of channel c sits at
  // xBase + r * xRowStride + c * xChannelStride + j (in f32 elements).
  xRows: u32,
  xCols: u32,
  xRowStride: u32,
  xChannelStride: u32,
  xBase: u32,
  maxGeneralWorkgroups: u32, // maxComputeWorkgroupsPerDimension: finalize_general's grid is 1-D
  _pad2: u32,
  _pad3: u32,
}

@group(0) @binding(0) var<uniform> params: FinalizeParams;
@group(0) @binding(1) var<storage, read> partials: array<vec4f>;
@group(0) @binding(2) var<storage, read> weight: array<f32>;
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(4) var<storage, read_write> runningMean: array<f32>;
@group(0) @binding(5) var<storage, read_write> runningVar: array<f32>;
@group(0) @binding(6) var<storage, read_write> counter: array<u32>;
@group(0) @binding(7) var<storage, read_write> channelStats: array<vec4f>;
// The general-path queue (layout: GENERAL_QUEUE_* in common/prelude.wgsl): finalize_train appends,
// finalize_general reads it, and the host dispatches finalize_general indirectly from its header.
@group(0) @binding(8) var<storage, read_write> generalQueue: array<atomic<u32>>;
@group(0) @binding(8) var<storage, read> generalList: array<u32>;
// x as words: float32 bits, or two float16 / bfloat16 values (HALF_FORMAT, common/half.wgsl).
@group(0) @binding(9) var<storage, read> x: array<u32>;

// Value i of x as float32 (i counts floats, or halves); for the rescan and common/channel-scan.wgsl.
fn channel_value(i: u32) -> f32 {
  return word_value(x[word_index(i)], i);
}

// A channel's statistics in the form the outputs need: the shift K, mean − K, invstd, the variance
// that feeds running_var and the biased variance.
struct Moments {
  k: f32,
  meanOffset: f32,
  invstd: f32,
  sampleVar: f32,
  biasedVar: f32,
}

// Divisor of M2 for the variance that feeds running_var: n (FLAG_BIASED_RUNNING_VAR) or n − 1,
// clamped to 1 as TensorFlow's fused kernel does (PyTorch never sends n = 1).
fn running_var_divisor(n: u32) -> f32 {
  if ((params.flags & FLAG_BIASED_RUNNING_VAR) != 0u) { return f32(n); }
  return f32(max(n - 1u, 1u));
}

// Batch weight of running_var: varianceMomentum, or the mean's cumulative factor.
fn variance_factor(factor: f32) -> f32 {
  if ((params.flags & FLAG_CUMULATIVE) != 0u) { return factor; }
  return params.varianceMomentum;
}

// Values per partial sum of the rescan: short sums keep float32 rounding at about BLOCK·ε.
const RESCAN_BLOCK: u32 = 32u;

// Channel c's statistics from its values, for a channel whose merged statistics are not finite
// (see the header): NaN/Inf propagation as in torch, or the 2^e-scaled recomputation.
fn rescan_channel(c: u32) -> Moments {
  let n = params.xRows * params.xCols;
  let first = params.xBase + c * params.xChannelStride;
  let special = scan_special_values(ChannelView(params.xRows, params.xCols, params.xRowStride, params.xChannelStride, params.xBase), c);
  if (holds_non_finite(special)) {
    return Moments(non_finite_mean(special), 0.0, f32_nan(), f32_nan(), f32_nan());
  }
  let maxMagnitude = special.maxMagnitude;
  // 2^e ≤ max|x| < 2^(e+1), so every scaled value lies in (−2, 2).
  let e = i32(maxMagnitude >> 23u) - 127;
  var total = 0.0;
  var part = 0.0;
  var b = 0u;
  for (var r = 0u; r < params.xRows; r++) {
    let row = first + r * params.xRowStride;
    for (var j = 0u; j < params.xCols; j++) {
      part += ldexp(channel_value(row + j), -e);
      b++;
      if (b == RESCAN_BLOCK) { total += part; part = 0.0; b = 0u; }
    }
  }
  let count = f32(n);
  var meanScaled = (total + part) / count;
  // Second pass around that mean: Σd corrects it, Σd² − (Σd)²/n is M2 (Chan et al.'s corrected
  // two-pass algorithm).
  var sumD = 0.0;
  var sumD2 = 0.0;
  var partD = 0.0;
  var partD2 = 0.0;
  b = 0u;
  for (var r = 0u; r < params.xRows; r++) {
    let row = first + r * params.xRowStride;
    for (var j = 0u; j < params.xCols; j++) {
      let d = ldexp(channel_value(row + j), -e) - meanScaled;
      partD += d;
      partD2 = fma(d, d, partD2);
      b++;
      if (b == RESCAN_BLOCK) { sumD += partD; sumD2 += partD2; partD = 0.0; partD2 = 0.0; b = 0u; }
    }
  }
  sumD += partD;
  sumD2 += partD2;
  meanScaled += sumD / count;
  let m2Scaled = max(sumD2 - sumD * sumD / count, 0.0);
  let biasedScaled = m2Scaled / count;
  // (var, invstd when var ≥ 2^128, running_var's variance, mean), back at scale 2^e.
  let unscaled = scale_pow2_4(vec4f(biasedScaled, 1.0 / sqrt(biasedScaled), m2Scaled / running_var_divisor(n), meanScaled),
                              vec4i(2 * e, -e, 2 * e, e));
  var invstd = invstd_of(unscaled.x, params.eps);
  if (!is_finite(unscaled.x)) {
    // var ≥ 2^128, so eps is far below its precision: invstd = 2^−e / sqrt(biasedScaled).
    invstd = unscaled.y;
    // Standard deviation ≥ 2^126: invstd is below float32's normal range, and GPUs flush such a
    // value to 0, which would normalize the channel to a finite, wrong `bias`. NaN says it instead.
    if ((bitcast<u32>(invstd) & F32_EXPONENT_BITS) == 0u) { invstd = f32_nan(); }
  }
  return Moments(unscaled.w, 0.0, invstd, unscaled.z, unscaled.x);
}

// Chan merge of channel c's partials (common/chan-merge.wgsl): its shift K, mean − K, M2 and count.
fn merge_partials(c: u32) -> Merged {
  return chan_merge(c * params.lanes, params.lanes);
}

// Everything finalize writes for one channel.
struct Outputs {
  k: f32,
  meanOffset: f32,
  invstd: f32,
  scale: f32,
  shiftedBias: f32,
  mean: f32,
  runningMean: f32,
  runningVar: f32,
  biasedVar: f32,
}

// The general path (see the header): statistics from the merge when finite, else from the rescan,
// and every later step through the IEEE helpers.
fn general_outputs(c: u32, merged: Merged, w: f32, b: f32, runningMean: f32, runningVar: f32, factor: f32) -> Outputs {
  // (mean, var + eps) in one vector operation.
  let sums = ieee_add4(vec4f(merged.k, merged.m2 / f32(merged.n), 0.0, 0.0), vec4f(merged.meanOffset, params.eps, 0.0, 0.0));
  var m = Moments(merged.k, merged.meanOffset, invstd_of_sum(sums.y), merged.m2 / running_var_divisor(merged.n), merged.m2 / f32(merged.n));
  var mean = sums.x;
  if (!(is_finite(merged.k) && is_finite(merged.meanOffset) && is_finite(merged.m2) && is_finite(mean))) {
    m = rescan_channel(c);
    mean = m.k;
  }
  // scale = w·invstd; running = (1 − f)·running + f·batch; shiftedBias = b − meanOffset·scale.
  let varFactor = variance_factor(factor);
  let products = ieee_mul4(vec4f(w, 1.0 - factor, factor, 1.0 - varFactor), vec4f(m.invstd, runningMean, mean, runningVar));
  let more = ieee_mul4(vec4f(m.meanOffset, varFactor, 0.0, 0.0), vec4f(products.x, m.sampleVar, 0.0, 0.0));
  let out = ieee_add4(vec4f(b, products.y, products.w, 0.0), vec4f(-more.x, products.z, more.y, 0.0));
  return Outputs(m.k, m.meanOffset, m.invstd, products.x, out.x, mean, out.y, out.z, m.biasedVar);
}

// Bits of 2^-60: var + eps at least this keeps invstd ≤ 2^30.
const VAR_EPS_FLOOR_BITS: u32 = 0x21800000u;

// Channel c's weight and bias (1 and 0 without affine) and its running statistics before this step
// (0 when they are not updated).
fn channel_inputs(c: u32) -> vec4f {
  var inputs = vec4f(1.0, 0.0, 0.0, 0.0);
  if ((params.flags & FLAG_AFFINE) != 0u) {
    inputs.x = weight[params.weightBase + c];
    inputs.y = bias[params.biasBase + c];
  }
  if ((params.flags & FLAG_UPDATE_RUNNING) != 0u) {
    inputs.z = runningMean[params.runningMeanBase + c];
    inputs.w = runningVar[params.runningVarBase + c];
  }
  return inputs;
}

fn write_outputs(c: u32, o: Outputs) {
  write_channel_constants(c, o.k, o.scale, o.shiftedBias, o.mean, o.invstd, o.meanOffset);
  write_plane(PLANE_BATCH_VAR, c, o.biasedVar);
  if ((params.flags & FLAG_UPDATE_RUNNING) != 0u) {
    runningMean[params.runningMeanBase + c] = o.runningMean;
    runningVar[params.runningVarBase + c] = o.runningVar;
  }
}

// Queues channel c for finalize_general, growing its indirect dispatch by a workgroup per
// WORKGROUP_SIZE channels (up to the per-dimension limit; finalize_general strides past it).
fn queue_general(c: u32, factor: f32) {
  let i = atomicAdd(&generalQueue[3], 1u);
  if (i % WORKGROUP_SIZE == 0u && i / WORKGROUP_SIZE < params.maxGeneralWorkgroups) {
    atomicAdd(&generalQueue[0], 1u);
  }
  if (i == 0u) {
    atomicStore(&generalQueue[1], 1u);
    atomicStore(&generalQueue[2], 1u);
  }
  let entry = GENERAL_QUEUE_HEADER_WORDS + i * GENERAL_QUEUE_ENTRY_WORDS;
  atomicStore(&generalQueue[entry], c);
  atomicStore(&generalQueue[entry + 1u], bitcast<u32>(factor));
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn finalize_train(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wid: vec3u,
                  @builtin(num_workgroups) nwg: vec3u) {
  let c = invocation(wid, nwg, lid);
  if (c >= params.channels) { return; }
  let merged = merge_partials(c);
  let inputs = channel_inputs(c);
  var factor = params.momentum;
  if ((params.flags & FLAG_UPDATE_RUNNING) != 0u) {
    let tracked = counter[params.counterSlot] + 1u;
    if ((params.flags & FLAG_CUMULATIVE) != 0u) {
      factor = 1.0 / f32(tracked);
    }
    if (c == 0u) {
      counter[1u - params.counterSlot] = tracked;
    }
  }

  // Ordinary inputs (all below 2^60 in magnitude, so finite, and a variance + eps that keeps invstd
  // below 2^30) take the plain formulas, which then cannot overflow. Anything else is queued for
  // finalize_general, so the general path's code never runs (not even masked, as software adapters
  // run untaken branches) for ordinary channels.
  let biasedVar = merged.m2 / f32(merged.n);
  let varEps = biasedVar + params.eps;
  if (!(moderate4(vec4f(merged.k, merged.meanOffset, merged.m2, varEps)) && moderate4(inputs) &&
        bitcast<u32>(varEps) >= VAR_EPS_FLOOR_BITS)) {
    queue_general(c, factor);
    return;
  }
  let invstd = 1.0 / sqrt(varEps);
  let scale = inputs.x * invstd;
  let mean = merged.k + merged.meanOffset;
  let varFactor = variance_factor(factor);
  write_outputs(c, Outputs(merged.k, merged.meanOffset, invstd, scale, inputs.y - merged.meanOffset * scale, mean,
                           (1.0 - factor) * inputs.z + factor * mean,
                           (1.0 - varFactor) * inputs.w + varFactor * (merged.m2 / running_var_divisor(merged.n)),
                           biasedVar));
}

// The general path for the channels finalize_train queued (dispatched indirectly; usually zero
// workgroups): NaN/Inf propagation, the overflow rescan, and IEEE arithmetic throughout.
@compute @workgroup_size(WORKGROUP_SIZE)
fn finalize_general(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wid: vec3u,
                    @builtin(num_workgroups) nwg: vec3u) {
  let queued = generalList[3];
  for (var i = wid.x * WORKGROUP_SIZE + lid; i < queued; i += nwg.x * WORKGROUP_SIZE) {
    let entry = GENERAL_QUEUE_HEADER_WORDS + i * GENERAL_QUEUE_ENTRY_WORDS;
    let c = generalList[entry];
    let inputs = channel_inputs(c);
    let factor = bitcast<f32>(generalList[entry + 1u]);
    write_outputs(c, general_outputs(c, merge_partials(c), inputs.x, inputs.y, inputs.z, inputs.w, factor));
  }
}
