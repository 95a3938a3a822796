// Folds an evaluation-mode batch norm into the convolution or linear layer before it, as PyTorch's
// torch.nn.utils.fusion.fuse_conv_bn_weights / fuse_linear_bn_weights do:
//   invstd  = 1 / sqrt(running_var + eps)
//   weight' = weight * (bn_weight * invstd)                          per output channel o
//   bias'   = (bias - running_mean) * invstd * bn_weight + bn_bias   (bias 0 when absent)
// One invocation per weight value; invocations below `channels` also write that channel's bias.
// The output channel of value i is i / inner (channels first: PyTorch O x I/groups x k...) or
// i % channels (channels last: Keras/TF.js k... x I/groups x O, depthwise k x k x C x M).
// WORKGROUP_SIZE and invocation() come from the shared prelude (shaders/common/prelude.wgsl).
// Numerics: float32 throughout (the CPU path folds in float64); sqrt and division are within the
// WGSL spec's 2.5 ULP, so folded values are within a few float32 ULP of PyTorch's float64 result.

struct FoldParams {
  count: u32,          // weight values
  channels: u32,       // output channels = batch-norm channels
  inner: u32,          // values per output channel
  channelsLast: u32,   // 1: the output channel is the fastest-moving index
  hasBias: u32,        // 1: the layer has a bias
  affine: u32,         // 1: the batch norm has weight and bias
  eps: f32,
  weightBase: u32,     // element offsets of each tensor inside its binding
  biasBase: u32,
  bnWeightBase: u32,
  bnBiasBase: u32,
  runningMeanBase: u32,
  runningVarBase: u32,
  foldedWeightBase: u32,
  foldedBiasBase: u32,
  _pad0: u32,
}

@group(0) @binding(0) var<uniform> params: FoldParams;
@group(0) @binding(1) var<storage, read> weight: array<f32>;
@group(0) @binding(2) var<storage, read> bias: array<f32>;
@group(0) @binding(3) var<storage, read> bnWeight: array<f32>;
@group(0) @binding(4) var<storage, read> bnBias: array<f32>;
@group(0) @binding(5) var<storage, read> runningMean: array<f32>;
@group(0) @binding(6) var<storage, read> runningVar: array<f32>;
@group(0) @binding(7) var<storage, read_write> foldedWeight: array<f32>;
@group(0) @binding(8) var<storage, read_write> foldedBias: array<f32>;

fn invstd(o: u32) -> f32 {
  return 1.0 / sqrt(runningVar[params.runningVarBase + o] + params.eps);
}

fn bn_weight(o: u32) -> f32 {
  if (params.affine == 1u) { return bnWeight[params.bnWeightBase + o]; }
  return 1.0;
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn fold_batch_norm(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wid: vec3u,
                   @builtin(num_workgroups) nwg: vec3u) {
  let i = invocation(wid, nwg, lid);  // prelude: 1-D index over a grid folded into x and y
  if (i < params.count) {
    var o = i / params.inner;
    if (params.channelsLast == 1u) { o = i % params.channels; }
    foldedWeight[params.foldedWeightBase + i] = weight[params.weightBase + i] * (bn_weight(o) * invstd(o));
  }
  if (i < params.channels) {
    var b = 0.0;
    if (params.hasBias == 1u) { b = bias[params.biasBase + i]; }
    var shift = 0.0;
    if (params.affine == 1u) { shift = bnBias[params.bnBiasBase + i]; }
    foldedBias[params.foldedBiasBase + i] = (b - runningMean[params.runningMeanBase + i]) * invstd(i) * bn_weight(i) + shift;
  }
}
