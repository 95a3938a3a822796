// Shared prelude: the contracts between the shaders and the TS that drives them, named once. Every
// shader module gets this file (src/gpu/shader-manifest.ts, composed at build time by
// build/wgsl-shaders.ts); src/gpu/contracts.ts holds the same names and values for TS, and
// test/wgsl-static.test.ts checks that they agree.
//
// channelStats, the per-channel constants buffer (array<vec4f>), is written by the forward and read
// by the elementwise stages and by backward. It holds CHANNEL_STATS_PLANES planes of
// planeStride = ceil(C / 4) vec4s each, channel c at [plane * planeStride + c / 4][c % 4], then
// from CHANNEL_STATS_PLANES * planeStride a packed region of one vec4(K, scale, shiftedBias, 0) per
// channel, so a channels-first reader needs one load per channel.
const PLANE_SHIFT: u32 = 0u;         // K, the channel's reference point (its first value)
const PLANE_SCALE: u32 = 1u;         // weight * invstd
const PLANE_SHIFTED_BIAS: u32 = 2u;  // bias - (mean - K) * scale, so y = (x - K) * scale + shiftedBias
const PLANE_MEAN: u32 = 3u;          // batch (or running, or caller-given) mean
const PLANE_INVSTD: u32 = 4u;        // 1 / sqrt(var + eps)
const PLANE_MEAN_OFFSET: u32 = 5u;   // mean - K
const PLANE_MEAN_DY: u32 = 6u;       // backward: sumDy / M
const PLANE_PROJ_SCALE: u32 = 7u;    // backward: sumDyXmu / M * invstd²
const PLANE_BATCH_VAR: u32 = 8u;     // training forward: biased batch variance, copied out as a batch statistic
const PLANE_PRELU_SLOPE: u32 = 9u;   // PReLU epilogue: per-channel slope, copied in from the weight tensor
const CHANNEL_STATS_PLANES: u32 = 10u;

// Bits of the `flags` uniform member. One bit has one meaning in every shader that reads it, and no
// two meanings share a bit, so a flags word means the same thing wherever it is passed.
const FLAG_AFFINE: u32 = 1u;            // finalize, normalize, backward-elementwise: weight and bias are bound
const FLAG_UPDATE_RUNNING: u32 = 2u;    // finalize: update running_mean / running_var / num_batches_tracked
const FLAG_CUMULATIVE: u32 = 4u;        // finalize: momentum None, factor = 1 / num_batches_tracked
const FLAG_FROM_RUNNING: u32 = 8u;      // normalize: evaluation, constants from the running statistics
const FLAG_GRAD_WEIGHT: u32 = 16u;      // backward-reduce: write grad_weight
const FLAG_GRAD_BIAS: u32 = 32u;        // backward-reduce: write grad_bias
const FLAG_INPUT_CONSTANTS: u32 = 64u;  // backward-reduce: write planes MEAN_DY and PROJ_SCALE for grad_input
const FLAG_FROM_VAR: u32 = 128u;        // backward_prepare: `invstd` holds a variance
const FLAG_BIASED_RUNNING_VAR: u32 = 256u; // finalize: running_var gets the biased batch variance (Keras 3, ONNX)
const FLAG_PREPARE_WEIGHT: u32 = 512u;  // backward_prepare: the forward's weight is bound (pre-activation epilogues)
const FLAG_PREPARE_BIAS: u32 = 1024u;   // backward_prepare: the forward's bias is bound (pre-activation epilogues)
const FLAG_PRELU_SHARED: u32 = 2048u;   // PReLU: one slope for all channels, at channel 0 of PLANE_PRELU_SLOPE

// Fused-epilogue activations, the values of the ACTIVATION override (common/epilogue.wgsl).
const ACTIVATION_NONE: u32 = 0u;
const ACTIVATION_RELU: u32 = 1u;
const ACTIVATION_CLAMP: u32 = 2u;
const ACTIVATION_LEAKY_RELU: u32 = 3u;
const ACTIVATION_SILU: u32 = 4u;
const ACTIVATION_GELU: u32 = 5u;
const ACTIVATION_GELU_TANH: u32 = 6u;
const ACTIVATION_HARDSWISH: u32 = 7u;
const ACTIVATION_SIGMOID: u32 = 8u;
const ACTIVATION_TANH: u32 = 9u;
const ACTIVATION_ELU: u32 = 10u;
const ACTIVATION_PRELU: u32 = 11u;

// Half-precision storage formats, the values of the HALF_FORMAT override (common/half.wgsl).
const HALF_FORMAT_NONE: u32 = 0u;  // float32 storage
const HALF_FORMAT_F16: u32 = 1u;   // IEEE binary16, two per u32 word
const HALF_FORMAT_BF16: u32 = 2u;  // bfloat16 (a float32's upper 16 bits), two per u32 word

// finalize's queue of channels for the general path (finalize.wgsl), an array<u32>: words 0-2 are
// the indirect dispatch of finalize_general (workgroups x, y, z), word 3 the number of queued
// channels, then GENERAL_QUEUE_ENTRY_WORDS words per channel: its index and its running factor.
const GENERAL_QUEUE_HEADER_WORDS: u32 = 4u;
const GENERAL_QUEUE_ENTRY_WORDS: u32 = 2u;

// The step counter (num_batches_tracked), an array<u32>: a step reads slot counterSlot and writes
// tracked + 1 into the other, so a failed submit leaves the slot it read intact.
const COUNTER_SLOTS: u32 = 2u;

// SyncBatchNorm records (sync-batch-norm.wgsl). Moments, one vec4f per channel:
// vec4f(K, mean - K, M2, bitcast<f32>(count)), components MOMENTS_*.
const MOMENTS_K: u32 = 0u;
const MOMENTS_MEAN_OFFSET: u32 = 1u;
const MOMENTS_M2: u32 = 2u;
const MOMENTS_COUNT: u32 = 3u;
// Merged statistics, one vec4f per channel: vec4f(K, mean - K, invstd, running-var feed), then one
// vec4f(meanFactor, varFactor, 0, 0) after the C records.
const MERGED_K: u32 = 0u;
const MERGED_MEAN_OFFSET: u32 = 1u;
const MERGED_INVSTD: u32 = 2u;
const MERGED_RUNNING_VAR: u32 = 3u;
// Gradient sums, GRAD_SUMS_PLANES planes of C f32: sum(dy), then sum(dy * xhat).
const GRAD_SUMS_PLANES: u32 = 2u;
const GRAD_PLANE_SUM_DY: u32 = 0u;
const GRAD_PLANE_SUM_DY_XHAT: u32 = 1u;

// Values per shifted block of the forward statistics (stats.wgsl's BLOCK default).
const STATS_BLOCK: u32 = 32u;
// Channels-last vec4 columns one contiguous elementwise invocation takes whole (normalize,
// backward-elementwise), when cols allows.
const CONTIGUOUS_COLUMN_GROUP: u32 = 4u;

// Invocations per workgroup of every entry point. No default: the host always passes it (TS
// WORKGROUP_SIZE), so its dispatch arithmetic and the shaders cannot disagree.
override WORKGROUP_SIZE: u32;

// Flat invocation index of a 1-D dispatch folded over x and y (TS `grid`).
fn invocation(wid: vec3u, nwg: vec3u, lid: u32) -> u32 {
  return (wid.x + wid.y * nwg.x) * WORKGROUP_SIZE + lid;
}

// Channel of a per-channel reduction workgroup: channels are spread over y and z (TS `reductionShape`).
fn channel_of(wid: vec3u, nwg: vec3u) -> u32 {
  return wid.y + wid.z * nwg.y;
}
