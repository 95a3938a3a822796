// Batch-norm backward, the functional API's stage 0: per-channel constants from statistics the
// caller saved, in the channelStats layout the forward's finalize leaves (common/prelude.wgsl), so
// that backward-reduce.wgsl and backward-elementwise.wgsl run unchanged after it.
//
// Algorithm and source: PyTorch's batch_norm_backward takes save_mean / save_invstd (training) or
// running_mean / running_var (evaluation, invstd = 1 / sqrt(var + eps), torch's
// batch_norm_backward_elemt with the running statistics). Here K = mean and meanOffset = 0: the
// caller's mean is the shift, so x − mean = (x − K) − 0 exactly as the forward's own constants give.
//
// channelStats planes: writes PLANE_SHIFT .. PLANE_MEAN_OFFSET and the packed region; PLANE_SCALE = invstd · weight and
// PLANE_SHIFTED_BIAS = bias let a pre-activation epilogue's backward (SiLU, GELU, ..., PReLU)
// recompute t = (x − K) · scale + shiftedBias.

struct PrepareParams {
  channels: u32,      // C
  planeStride: u32,   // ceil(C / 4)
  flags: u32,         // FLAG_FROM_VAR | FLAG_PREPARE_WEIGHT | FLAG_PREPARE_BIAS (common/prelude.wgsl)
  eps: f32,           // FLAG_FROM_VAR: invstd = 1 / sqrt(var + eps)
  meanBase: u32,      // element offsets of the inputs inside their bindings
  invstdBase: u32,
  weightBase: u32,    // element offsets of the forward's weight and bias
  biasBase: u32,
}

@group(0) @binding(0) var<uniform> params: PrepareParams;
@group(0) @binding(1) var<storage, read_write> channelStats: array<vec4f>;
@group(0) @binding(2) var<storage, read> mean: array<f32>;
@group(0) @binding(3) var<storage, read> invstd: array<f32>;
@group(0) @binding(4) var<storage, read> weight: array<f32>;
@group(0) @binding(5) var<storage, read> bias: array<f32>;

// Functional API: per-channel constants from a caller's saved mean / invstd (training) or running
// mean / variance (evaluation, invstd = 1 / sqrt(var + eps)), shifted by K = mean.
@compute @workgroup_size(WORKGROUP_SIZE)
fn backward_prepare(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wid: vec3u,
                    @builtin(num_workgroups) nwg: vec3u) {
  let c = invocation(wid, nwg, lid);
  if (c >= params.channels) { return; }
  let m = mean[params.meanBase + c];
  var inv = invstd[params.invstdBase + c];
  if ((params.flags & FLAG_FROM_VAR) != 0u) {
    inv = invstd_of(inv, params.eps);
  }
  // PLANE_SCALE and PLANE_SHIFTED_BIAS (with K = mean) let a pre-activation epilogue's backward
  // (SiLU, GELU, ..., PReLU) recompute t.
  var w = 1.0;
  var b = 0.0;
  if ((params.flags & FLAG_PREPARE_WEIGHT) != 0u) { w = weight[params.weightBase + c]; }
  if ((params.flags & FLAG_PREPARE_BIAS) != 0u) { b = bias[params.biasBase + c]; }
  write_channel_constants(c, m, inv * w, b, m, inv, 0.0);
}
