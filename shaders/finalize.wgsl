// Batch-norm statistics, stage 2 of 3: one invocation per channel turns statistics into the
// per-channel constants that the elementwise stages need, and updates the running statistics.
//
// finalize_train merges the channel's partials from stats.wgsl with Chan, Golub & LeVeque's
// pairwise update (n = na + nb; d = mb - ma; mean = ma + d * nb / n; M2 = M2a + M2b + d² na nb / n),
// exactly as PyTorch's CUDA batch norm merges per-thread Welford states. Then, like
// torch.nn.functional.batch_norm in training mode:
//   biased var   = M2 / n                      (used to normalize)
//   unbiased var = M2 / (n - 1)                (used for running_var)
//   factor       = momentum, or 1 / num_batches_tracked when momentum is None (cumulative average)
//   running      = (1 - factor) * running + factor * batch
// (Evaluation needs no finalize: normalize.wgsl derives its constants from the running stats.)
//
// Output: planes PLANE_SHIFT (K), PLANE_SCALE (weight * invstd), PLANE_SHIFTED_BIAS
// (bias - (mean - K) * scale), PLANE_MEAN, PLANE_INVSTD and PLANE_MEAN_OFFSET (mean - K) of
// `channelStats`, and its packed vec4(K, scale, shiftedBias, 0) per channel (layout: common/prelude.wgsl).
// So the normalize stage computes y = (x - K) * scale + shiftedBias: the subtraction x - K is exact
// for data near its mean, which keeps offset channels (mean 1e4, std 0.1) accurate in float32.
//
// num_batches_tracked lives in counter[0] / counter[1]; each training step reads slot
// `counterSlot` and channel 0 writes the incremented value to the other slot, so no two
// invocations of one dispatch touch the same word and consecutive steps may be encoded together.

struct FinalizeParams {
  channels: u32,
  lanes: u32,         // partials per channel
  flags: u32,         // FLAG_AFFINE | FLAG_UPDATE_RUNNING | FLAG_CUMULATIVE (common/prelude.wgsl)
  counterSlot: u32,   // 0 or 1
  eps: f32,
  momentum: f32,
  weightBase: u32,    // element offsets of each per-channel tensor inside its binding
  biasBase: u32,
  runningMeanBase: u32,
  runningVarBase: u32,
  planeStride: u32,   // ceil(C / 4): vec4s per plane of channelStats
  _pad0: u32,
}

@group(0) @binding(0) var<uniform> params: FinalizeParams;
@group(0) @binding(1) var<storage, read> partials: array<vec4f>;
@group(0) @binding(2) var<storage, read> weight: array<f32>;
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(4) var<storage, read_write> runningMean: array<f32>;
@group(0) @binding(5) var<storage, read_write> runningVar: array<f32>;
@group(0) @binding(6) var<storage, read_write> counter: array<u32>;
@group(0) @binding(7) var<storage, read_write> channelStats: array<vec4f>;

fn write_constants(c: u32, k: f32, meanOffset: f32, invstd: f32) {
  var w = 1.0;
  var b = 0.0;
  if ((params.flags & FLAG_AFFINE) != 0u) {
    w = weight[params.weightBase + c];
    b = bias[params.biasBase + c];
  }
  let scale = w * invstd;
  write_plane(PLANE_SHIFT, c, k);
  write_plane(PLANE_SCALE, c, scale);
  write_plane(PLANE_SHIFTED_BIAS, c, b - meanOffset * scale);
  write_plane(PLANE_MEAN, c, k + meanOffset);
  write_plane(PLANE_INVSTD, c, invstd);
  write_plane(PLANE_MEAN_OFFSET, c, meanOffset);
  write_packed(c, k, scale, b - meanOffset * scale);
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn finalize_train(@builtin(global_invocation_id) gid: vec3u) {
  let c = gid.x;
  if (c >= params.channels) { return; }
  let first = c * params.lanes;
  let k = partials[first].w;
  var n = 0u;
  var mean = 0.0;
  var m2 = 0.0;
  for (var p = 0u; p < params.lanes; p++) {
    let part = partials[first + p];
    let nb = bitcast<u32>(part.x);
    if (nb == 0u) { continue; }
    let total = n + nb;
    let fb = f32(nb) / f32(total);
    let d = part.y - mean;
    mean += d * fb;
    m2 += part.z + d * d * f32(n) * fb;
    n = total;
  }
  let biasedVar = max(m2, 0.0) / f32(n);
  let invstd = 1.0 / sqrt(biasedVar + params.eps);
  write_constants(c, k, mean, invstd);

  if ((params.flags & FLAG_UPDATE_RUNNING) != 0u) {
    let tracked = counter[params.counterSlot] + 1u;
    var factor = params.momentum;
    if ((params.flags & FLAG_CUMULATIVE) != 0u) {
      factor = 1.0 / f32(tracked);
    }
    let unbiasedVar = max(m2, 0.0) / f32(n - 1u);
    let rm = params.runningMeanBase + c;
    let rv = params.runningVarBase + c;
    runningMean[rm] = (1.0 - factor) * runningMean[rm] + factor * (k + mean);
    runningVar[rv] = (1.0 - factor) * runningVar[rv] + factor * unbiasedVar;
    if (c == 0u) {
      counter[1u - params.counterSlot] = tracked;
    }
  }
}
