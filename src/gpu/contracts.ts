// The contracts between the shaders and the TS that drives them, named once for TS. The WGSL side
// is shaders/common/prelude.wgsl, with the same names and values; test/wgsl-static.test.ts parses
// the prelude and fails if the two disagree. Change both together.

/** Invocations per workgroup of every entry point; passed to every pipeline as the `WORKGROUP_SIZE` override. */
export const WORKGROUP_SIZE = 64;

// channelStats: CHANNEL_STATS_PLANES planes of planeStride = ceil(C / 4) vec4s (channel c at
// [plane * planeStride + c / 4][c % 4]), then a packed region of one vec4(K, scale, shiftedBias, 0)
// per channel. Written by the forward (finalize.wgsl, or normalize.wgsl in evaluation) and by
// backward_prepare; read by the elementwise stages and backward.

/** Plane of K, the channel's reference point (its first value), subtracted before scaling. */
export const PLANE_SHIFT = 0;
/** Plane of weight · invstd. */
export const PLANE_SCALE = 1;
/** Plane of bias − (mean − K) · scale, so y = (x − K) · scale + shiftedBias. */
export const PLANE_SHIFTED_BIAS = 2;
/** Plane of the mean (batch, running or caller-given). */
export const PLANE_MEAN = 3;
/** Plane of invstd = 1 / sqrt(var + eps). */
export const PLANE_INVSTD = 4;
/** Plane of mean − K. */
export const PLANE_MEAN_OFFSET = 5;
/** Backward: plane of sumDy / M. */
export const PLANE_MEAN_DY = 6;
/** Backward: plane of sumDyXmu / M · invstd². */
export const PLANE_PROJ_SCALE = 7;
/**
 * Training forward: plane of the biased batch variance. No stage reads it; the forward copies it
 * (with PLANE_MEAN and PLANE_INVSTD) to callers who ask for the batch statistics.
 */
export const PLANE_BATCH_VAR = 8;
/**
 * Plane of a PReLU epilogue's per-channel slope, copied in from the weight tensor before the
 * forward's normalize and the backward (a copy, not a binding: normalize and backward-elementwise
 * already use WebGPU's default 8 storage buffers per stage).
 */
export const PLANE_PRELU_SLOPE = 9;
/** Planes before the packed region. */
export const CHANNEL_STATS_PLANES = 10;

// Bits of the kernels' `flags` uniform member. One bit, one meaning, in every shader.

/** finalize, normalize, backward-elementwise: weight and bias are bound (affine module). */
export const FLAG_AFFINE = 1;
/** finalize: update running_mean, running_var and num_batches_tracked. */
export const FLAG_UPDATE_RUNNING = 2;
/** finalize: momentum None, so the factor is 1 / num_batches_tracked (cumulative average). */
export const FLAG_CUMULATIVE = 4;
/** normalize: evaluation, constants derived from the running statistics. */
export const FLAG_FROM_RUNNING = 8;
/** backward-reduce: write grad_weight. */
export const FLAG_GRAD_WEIGHT = 16;
/** backward-reduce: write grad_bias. */
export const FLAG_GRAD_BIAS = 32;
/** backward-reduce: write planes PLANE_MEAN_DY and PLANE_PROJ_SCALE for the training grad_input. */
export const FLAG_INPUT_CONSTANTS = 64;
/** backward_prepare: the `invstd` binding holds a variance. */
export const FLAG_FROM_VAR = 128;
/** finalize: running_var gets the biased batch variance (Keras 3, ONNX, numpy-ml) instead of the unbiased one. */
export const FLAG_BIASED_RUNNING_VAR = 256;
/** backward_prepare: the forward's weight is bound (an epilogue that recomputes its pre-activation, as SiLU). */
export const FLAG_PREPARE_WEIGHT = 512;
/** backward_prepare: the forward's bias is bound (an epilogue that recomputes its pre-activation, as SiLU). */
export const FLAG_PREPARE_BIAS = 1024;
/** normalize, backward-reduce, backward-elementwise: the PReLU slope is one value for every channel (weight of shape [1]), at channel 0 of PLANE_PRELU_SLOPE. */
export const FLAG_PRELU_SHARED = 2048;

// Fused-epilogue activations: the values of the `ACTIVATION` override (shaders/common/epilogue.wgsl).

/** No activation (the default). */
export const ACTIVATION_NONE = 0;
/** max(t, 0). */
export const ACTIVATION_RELU = 1;
/** hardtanh(t, min, max); ReLU6 is clamp(0, 6). */
export const ACTIVATION_CLAMP = 2;
/** t > 0 ? t : slope · t. */
export const ACTIVATION_LEAKY_RELU = 3;
/** t · sigmoid(t). */
export const ACTIVATION_SILU = 4;
/** t · Φ(t), Φ the standard normal CDF (GELU, erf form; torch approximate='none'). */
export const ACTIVATION_GELU = 5;
/** GELU, tanh approximation (torch approximate='tanh'). */
export const ACTIVATION_GELU_TANH = 6;
/** t · relu6(t + 3) / 6. */
export const ACTIVATION_HARDSWISH = 7;
/** 1 / (1 + exp(−t)). */
export const ACTIVATION_SIGMOID = 8;
/** tanh(t). */
export const ACTIVATION_TANH = 9;
/** t > 0 ? t : alpha · (exp(t) − 1). */
export const ACTIVATION_ELU = 10;
/** t > 0 ? t : slope[c] · t, a per-channel slope (PLANE_PRELU_SLOPE). */
export const ACTIVATION_PRELU = 11;

// Half-precision storage formats: the values of the `HALF_FORMAT` override (shaders/common/half.wgsl).

/** float32 storage (the default). */
export const HALF_FORMAT_NONE = 0;
/** float16 (IEEE binary16), two values per u32 word, element 2w in the low half of word w. */
export const HALF_FORMAT_F16 = 1;
/** bfloat16 (the upper 16 bits of a float32), packed as HALF_FORMAT_F16. */
export const HALF_FORMAT_BF16 = 2;

/** vec4s per plane of channelStats for `channels` channels (the kernels' `planeStride` uniform). */
export function planeStride(channels: number): number {
  return Math.ceil(channels / 4);
}

/** Bytes of a channelStats buffer for `channels` channels: the planes, then one packed vec4 per channel. */
export function channelStatsBytes(channels: number): number {
  return (CHANNEL_STATS_PLANES * planeStride(channels) + channels) * 16;
}

/** The whole channelStats range of `buffer` for `channels` channels, as a binding. */
export function bindChannelStats(buffer: GPUBuffer, channels: number): GPUBufferBinding {
  return { buffer, offset: 0, size: channelStatsBytes(channels) };
}

/** Bytes of one forward statistics partial: vec4f(bitcast count, mean − K, M2, K) (stats.wgsl). */
export const STATS_PARTIAL_BYTES = 16;
/** Bytes of one backward partial: vec2f(sumDy, sumDyXmu) (backward-reduce.wgsl). */
export const BACKWARD_PARTIAL_BYTES = 8;

// finalize's queue of channels for its general path (shaders/finalize.wgsl): words 0-2 the indirect
// dispatch of finalize_general, word 3 the channel count, then one entry per queued channel.

/** u32 words before the first entry of the general-path queue. */
export const GENERAL_QUEUE_HEADER_WORDS = 4;
/** u32 words per queued channel: its index and its running-statistics factor (f32 bits). */
export const GENERAL_QUEUE_ENTRY_WORDS = 2;

/** Bytes of a general-path queue that can hold every one of `channels` channels. */
export function generalQueueBytes(channels: number): number {
  return (GENERAL_QUEUE_HEADER_WORDS + GENERAL_QUEUE_ENTRY_WORDS * channels) * 4;
}

// The step counter: num_batches_tracked on the GPU, COUNTER_SLOTS u32 slots in a buffer of
// COUNTER_BYTES. A training step reads slot tracked % COUNTER_SLOTS (finalize's `counterSlot`) and
// writes tracked + 1 into the other, so a step whose submit fails leaves the slot it read intact.

/** u32 slots of the step counter. */
export const COUNTER_SLOTS = 2;
/** Bytes of the step-counter buffer (the slots, padded to 16). */
export const COUNTER_BYTES = 16;
/** The counter buffer's contents for num_batches_tracked = `tracked`: every slot holds it, so the next step reads it whichever slot it uses. */
export function counterWords(tracked: number): Uint32Array<ArrayBuffer> {
  return new Uint32Array(COUNTER_BYTES / 4).fill(tracked, 0, COUNTER_SLOTS);
}

// SyncBatchNorm's moments record (shaders/sync-batch-norm.wgsl, sync_moments), one vec4f per
// channel: vec4f(K, mean − K, M2, bitcast<f32>(count as u32)). MOMENTS_* name its components.

/** Moments record component: K, the channel's shift (its first value). */
export const MOMENTS_K = 0;
/** Moments record component: mean − K. */
export const MOMENTS_MEAN_OFFSET = 1;
/** Moments record component: M2 = Σ(x − mean)². */
export const MOMENTS_M2 = 2;
/** Moments record component: the value count, a u32 stored by bitcast. */
export const MOMENTS_COUNT = 3;
/** Bytes per channel of a moments record. */
export const MOMENTS_RECORD_BYTES = 16;

// SyncBatchNorm's merged record (sync_forward_constants), one vec4f per channel:
// vec4f(K, mean − K, invstd, the variance that feeds running_var); after the C records one more
// vec4f(meanFactor, varFactor, 0, 0), the step's batch weights of the running update.

/** Merged record component: K. */
export const MERGED_K = 0;
/** Merged record component: mean − K. */
export const MERGED_MEAN_OFFSET = 1;
/** Merged record component: invstd. */
export const MERGED_INVSTD = 2;
/** Merged record component: the variance that feeds running_var (unbiased or biased). */
export const MERGED_RUNNING_VAR = 3;
/** Bytes per channel of a merged record. */
export const MERGED_RECORD_BYTES = 16;

// SyncBatchNorm's gradient record (sync_backward_constants, and a shard's gradient partial):
// GRAD_SUMS_PLANES planes of C f32, plane GRAD_PLANE_SUM_DY then plane GRAD_PLANE_SUM_DY_XHAT.

/** Planes of a gradient record. */
export const GRAD_SUMS_PLANES = 2;
/** Gradient record plane: Σdy. */
export const GRAD_PLANE_SUM_DY = 0;
/** Gradient record plane: Σdy·x̂, x̂ = (x − mean)·invstd. */
export const GRAD_PLANE_SUM_DY_XHAT = 1;

/** Values per shifted block of the forward statistics: the default of stats.wgsl's `BLOCK` override, which TS sets to it. */
export const STATS_BLOCK = 32;
/**
 * Channels-last vec4 columns per invocation of the contiguous elementwise pattern, when cols
 * allows (normalize.wgsl, backward-elementwise.wgsl take a group of this many columns whole).
 */
export const CONTIGUOUS_COLUMN_GROUP = 4;

// SyncBatchNorm's GPU merge (shaders/sync-merge.wgsl): S gathered moments records per channel
// merged into one record in emulated binary64, read by sync_forward_merged and
// sync_backward_constants.

/**
 * Bytes per channel of a GPU-merged moments record (shaders/sync-merge.wgsl): vec4<u32>(mean lo,
 * mean hi, M2 lo, M2 hi) as binary64 bits, then vec4<u32>(count, 0, 0, 0).
 */
export const F64_MOMENTS_RECORD_BYTES = 32;
/** Bytes per channel of a gradient record: GRAD_SUMS_PLANES f32 (a shard's C Σdy, then C Σdy·x̂). */
export const GRAD_RECORD_BYTES = GRAD_SUMS_PLANES * 4;
