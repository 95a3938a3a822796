// Batch-norm backward, stage 1 of 2: per-channel sums of the upstream gradient,
//   sumDy[c]    = Σ dy
//   sumDyXmu[c] = Σ dy · (x − mean[c])
// over the batch and every spatial position, in ONE read of x and dy; then a per-channel finalize
// that turns them into grad_weight, grad_bias and the constants of the elementwise stage.
//
// Algorithm and source: PyTorch's CUDA batch_norm_backward (aten/src/ATen/native/cuda/
// Normalization.cuh, batch_norm_backward_reduce_kernel + batch_norm_backward_elemt_kernel):
//   grad_bias   = sumDy
//   grad_weight = sumDyXmu · invstd
//   training:  grad_input = (dy − sumDy / M − (x − mean) · sumDyXmu / M · invstd²) · invstd · weight
//   running statistics (eval): grad_input = dy · invstd · weight (no reduction needed)
// where M = N × spatial. As in stats.wgsl, the reduction is split without workgroup barriers:
// every invocation sums its own strided slice of one channel (channels-last: of four neighbouring
// channels) into one partial (sumDy, sumDyXmu), and reduce_finalize adds a channel's partials.
// The split, the lane count and the data views are the same as stats.wgsl's (see there).
//
// Fused epilogue (ACTIVATION / RESIDUAL overrides, shaders/common/epilogue.wgsl): each dy is
// first taken through the activation's derivative (mask from the saved output y, or the
// derivative at the pre-activation recomputed from x and planes PLANE_SHIFT .. PLANE_SHIFTED_BIAS),
// exactly as the elementwise stage does, so both sums are of dL/dt. With a residual, that dL/dt is
// also the residual's gradient: stored here (GRAD_RESIDUAL), it becomes the elementwise stage's
// input in place of dy and the saved output.
//
// Exactness: x − mean is formed as (x − K) − meanOffset with the shift K and meanOffset = mean − K
// that the forward's finalize stored (channelStats planes PLANE_SHIFT and PLANE_MEAN_OFFSET): x − K is exact in float32 for
// data clustered around its mean, so offset data (mean 1e4, std 0.1) keeps the precision of its
// spread. The statistics are never recomputed.
//
// channelStats planes (layout: common/prelude.wgsl): read PLANE_SHIFT (K), PLANE_INVSTD and
// PLANE_MEAN_OFFSET (and, for a pre-activation epilogue, PLANE_SCALE and PLANE_SHIFTED_BIAS); reduce_finalize
// writes PLANE_MEAN_DY = sumDy / M and PLANE_PROJ_SCALE = sumDyXmu / M · invstd² for
// backward-elementwise.wgsl. For the functional API, backward-prepare.wgsl first fills planes
// PLANE_SHIFT .. PLANE_MEAN_OFFSET from the caller's saved statistics.

struct BackwardParams {
  rows: u32,          // channels-first: N; channels-last: N * spatial
  cols: u32,          // channels-first: spatial (/4 for vec4); channels-last: C (/4 for vec4)
  rowStride: u32,     // elements between consecutive rows
  lanes: u32,         // partials per channel (P)
  channels: u32,      // C
  xBase: u32,         // offset of element 0 of x in its binding, in bound elements
  dyBase: u32,        // same for dy
  colsPerLane: u32,   // channels-first with CONTIGUOUS: ceil(cols / lanes)
  _pad4: u32,
  planeStride: u32,   // ceil(C / 4)
  flags: u32,         // FLAG_GRAD_WEIGHT | FLAG_GRAD_BIAS | FLAG_INPUT_CONSTANTS (common/prelude.wgsl)
  count: u32,         // M = N * spatial, values per channel
  gradWeightBase: u32,
  gradBiasBase: u32,
  outputBase: u32,    // epilogue: offsets of the forward's output and residual
  residualBase: u32,
  activationMin: f32,   // ACTIVATION_CLAMP bounds
  activationMax: f32,
  activationSlope: f32, // ACTIVATION_LEAKY_RELU slope
  gradResidualBase: u32, // GRAD_RESIDUAL: offset of the residual's gradient
  _pad0: u32,
  _pad1: u32,
  _pad2: u32,
  _pad3: u32,
}

@group(0) @binding(0) var<uniform> params: BackwardParams;
@group(0) @binding(1) var<storage, read> x: array<vec4f>;
@group(0) @binding(2) var<storage, read> dy: array<vec4f>;
@group(0) @binding(3) var<storage, read_write> partials: array<vec2f>;
@group(0) @binding(4) var<storage, read_write> channelStats: array<vec4f>;
@group(0) @binding(5) var<storage, read_write> gradWeight: array<f32>;
@group(0) @binding(6) var<storage, read_write> gradBias: array<f32>;
// Fused epilogue (shaders/common/epilogue.wgsl): the forward's output (ReLU-family masks) and
// residual (the recomputed pre-activation).
@group(0) @binding(9) var<storage, read> output: array<vec4f>;
@group(0) @binding(10) var<storage, read> residual: array<vec4f>;
// The residual's gradient dL/dt, stored as it is computed (GRAD_RESIDUAL): the elementwise stage
// then reads it in place of dy and the saved output, one tensor fewer than recomputing the mask.
@group(0) @binding(13) var<storage, read_write> gradResidual: array<vec4f>;
@group(0) @binding(13) var<storage, read_write> gradResidualScalar: array<f32>;
// x, dy, output and residual as u32 words (common/half.wgsl), for the scalar kernels reduce_cf1 /
// reduce_cl1 (any dtype: float32 bits, or two float16 / bfloat16 values with HALF_FORMAT, `*Base`
// in values) and the word kernels reduce_cf2h / reduce_cl2h (half precision with even spatial /
// even C: the vec4 kernels over words of two values, `*Base` and `cols` in words). With half
// precision nothing here stores gradResidual (GRAD_RESIDUAL stays false): the scalar kernels'
// invocations would share words, so backward-elementwise.wgsl writes it for every half shape.
@group(0) @binding(1) var<storage, read> xWords: array<u32>;
@group(0) @binding(2) var<storage, read> dyWords: array<u32>;
@group(0) @binding(9) var<storage, read> outputWords: array<u32>;
@group(0) @binding(10) var<storage, read> residualWords: array<u32>;

// Channels-first column assignment (lane_columns, common/lane-columns.wgsl), as in stats.wgsl:
// false (GPUs) columns p, p + lanes, ... (coalesced); true (fallback adapters) the contiguous
// columns [p·colsPerLane, (p + 1)·colsPerLane).
override CONTIGUOUS: bool = false;
// true: store dL/dt of every element as the residual's gradient.
override GRAD_RESIDUAL: bool = false;
// true (PReLU only): sum dy·min(t, 0) instead of dL/dt, for the PReLU weight's gradient (reduced4).
override PRELU_WEIGHT_GRAD: bool = false;

// Value i (in values, base included) of the word views, any dtype, widened exactly.
fn load_x1(i: u32) -> f32 {
  return word_value(xWords[word_index(i)], i);
}

fn load_dy1(i: u32) -> f32 {
  return word_value(dyWords[word_index(i)], i);
}

fn load_output1(i: u32) -> f32 {
  return word_value(outputWords[word_index(i)], i);
}

fn load_residual1(i: u32) -> f32 {
  return word_value(residualWords[word_index(i)], i);
}

// Pre-activation epilogues only (activation_uses_pre_activation): vec3(scale, shift, PReLU slope)
// of channel c, the forward's t = (x − K)·scale + shift (planes PLANE_SCALE and
// PLANE_SHIFTED_BIAS); zeros otherwise, so other pipelines load nothing.
fn pre_activation_coef(c: u32) -> vec3f {
  if (!activation_uses_pre_activation()) { return vec3f(0.0); }
  return vec3f(plane1(PLANE_SCALE, c), plane1(PLANE_SHIFTED_BIAS, c), prelu_slope(c));
}

// What the reduction sums in place of dL/dt: PRELU_WEIGHT_GRAD, dy·min(t, 0) (the PReLU weight's
// gradient, torch's Σ dy·t·[t ≤ 0] over the batch and spatial positions), which reduce_finalize
// then writes as its grad_bias output; otherwise d = dL/dt itself.
fn reduced4(g: vec4f, t: vec4f, d: vec4f) -> vec4f {
  if (PRELU_WEIGHT_GRAD) { return g * min(t, vec4f(0.0)); }
  return d;
}

// dL/dt at flat element i from dL/dy = g through the fused epilogue (the identity by default);
// xk = x − K, (es, eh, ew) = pre_activation_coef per lane.
fn epilogue_grad4(g: vec4f, i: u32, xk: vec4f, es: vec4f, eh: vec4f, ew: vec4f) -> vec4f {
  let p = vec3f(params.activationMin, params.activationMax, params.activationSlope);
  var d = g;
  if (activation_masks_from_output()) {
    d = activation_grad_from_output4(g, output[params.outputBase + i], p);
  } else if (activation_uses_pre_activation()) {
    var t = fma(xk, es, eh);
    if (RESIDUAL) { t += residual[params.residualBase + i]; }
    d = activation_grad4(g, t, p, ew);
    d = reduced4(g, t, d);
  }
  if (GRAD_RESIDUAL) { gradResidual[params.gradResidualBase + i] = d; }
  return d;
}

fn epilogue_grad1(g: f32, i: u32, xk: f32, e: vec3f) -> f32 {
  let p = vec3f(params.activationMin, params.activationMax, params.activationSlope);
  var d = g;
  if (activation_masks_from_output()) {
    d = activation_grad_from_output1(g, load_output1(params.outputBase + i), p);
  } else if (activation_uses_pre_activation()) {
    var t = fma(xk, e.x, e.y);
    if (RESIDUAL) { t += load_residual1(params.residualBase + i); }
    d = activation_grad1(g, t, p, e.z);
    d = reduced4(vec4f(g), vec4f(t), vec4f(d)).x;
  }
  if (GRAD_RESIDUAL) { gradResidualScalar[params.gradResidualBase + i] = d; }
  return d;
}

// Channels-first, vec4 loads (spatial % 4 == 0): invocation p < lanes ≤ cols of channel c reads
// columns p, p + lanes, ... of every row (one row per batch item).
@compute @workgroup_size(WORKGROUP_SIZE)
fn reduce_cf4(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wid: vec3u,
              @builtin(num_workgroups) nwg: vec3u) {
  let c = channel_of(wid, nwg);
  let p = wid.x * WORKGROUP_SIZE + lid;
  if (c >= params.channels || p >= params.lanes) { return; }
  let k = vec4f(plane1(PLANE_SHIFT, c));
  let meanOffset = vec4f(plane1(PLANE_MEAN_OFFSET, c));
  let e = pre_activation_coef(c);
  let es = vec4f(e.x);
  let eh = vec4f(e.y);
  let ew = vec4f(e.z);
  let chan = c * params.cols;
  var sumDy = vec4f(0.0);
  var sumDyXmu = vec4f(0.0);
  let span = lane_columns(p);
  var rowStart = chan;
  for (var row = 0u; row < params.rows; row++) {
    let rowEnd = rowStart + span.y;
    for (var i = rowStart + span.x; i < rowEnd; i += span.z) {
      let xk = x[params.xBase + i] - k;
      let g = epilogue_grad4(dy[params.dyBase + i], i, xk, es, eh, ew);
      sumDy += g;
      sumDyXmu += g * (xk - meanOffset);
    }
    rowStart += params.rowStride;
  }
  partials[c * params.lanes + p] = vec2f(dot(sumDy, vec4f(1.0)), dot(sumDyXmu, vec4f(1.0)));
}

// Channels-first, scalar loads (any spatial size or alignment; float32, or half precision with HALF_FORMAT).
@compute @workgroup_size(WORKGROUP_SIZE)
fn reduce_cf1(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wid: vec3u,
              @builtin(num_workgroups) nwg: vec3u) {
  let c = channel_of(wid, nwg);
  let p = wid.x * WORKGROUP_SIZE + lid;
  if (c >= params.channels || p >= params.lanes) { return; }
  let k = plane1(PLANE_SHIFT, c);
  let meanOffset = plane1(PLANE_MEAN_OFFSET, c);
  let e = pre_activation_coef(c);
  let chan = c * params.cols;
  var sumDy = 0.0;
  var sumDyXmu = 0.0;
  let span = lane_columns(p);
  var rowStart = chan;
  for (var row = 0u; row < params.rows; row++) {
    let rowEnd = rowStart + span.y;
    for (var i = rowStart + span.x; i < rowEnd; i += span.z) {
      let xk = load_x1(params.xBase + i) - k;
      let g = epilogue_grad1(load_dy1(params.dyBase + i), i, xk, e);
      sumDy += g;
      sumDyXmu += g * (xk - meanOffset);
    }
    rowStart += params.rowStride;
  }
  partials[c * params.lanes + p] = vec2f(sumDy, sumDyXmu);
}

// Channels-last, vec4 loads (C % 4 == 0): invocation i owns channels 4*col..4*col+3 and every
// `lanes`-th row starting at its lane, so neighbouring invocations read neighbouring addresses.
@compute @workgroup_size(WORKGROUP_SIZE)
fn reduce_cl4(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wid: vec3u,
              @builtin(num_workgroups) nwg: vec3u) {
  let i = invocation(wid, nwg, lid);
  if (i >= params.lanes * params.cols) { return; }
  let col = i % params.cols;
  let lane = i / params.cols;
  let k = plane4(PLANE_SHIFT, col);
  let meanOffset = plane4(PLANE_MEAN_OFFSET, col);
  var es = vec4f(0.0);
  var eh = vec4f(0.0);
  var ew = vec4f(0.0);
  for (var l = 0u; l < 4u; l++) {
    let el = pre_activation_coef(col * 4u + l);
    es[l] = el.x;
    eh[l] = el.y;
    ew[l] = el.z;
  }
  var sumDy = vec4f(0.0);
  var sumDyXmu = vec4f(0.0);
  for (var row = lane; row < params.rows; row += params.lanes) {
    let j = row * params.rowStride + col;
    let xk = x[params.xBase + j] - k;
    let g = epilogue_grad4(dy[params.dyBase + j], j, xk, es, eh, ew);
    sumDy += g;
    sumDyXmu += g * (xk - meanOffset);
  }
  let c0 = col * 4u;
  for (var l = 0u; l < 4u; l++) {
    partials[(c0 + l) * params.lanes + lane] = vec2f(sumDy[l], sumDyXmu[l]);
  }
}

// Channels-last, scalar loads (any C or alignment; float32, or half precision with HALF_FORMAT).
@compute @workgroup_size(WORKGROUP_SIZE)
fn reduce_cl1(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wid: vec3u,
              @builtin(num_workgroups) nwg: vec3u) {
  let i = invocation(wid, nwg, lid);
  if (i >= params.lanes * params.cols) { return; }
  let col = i % params.cols;
  let lane = i / params.cols;
  let k = plane1(PLANE_SHIFT, col);
  let meanOffset = plane1(PLANE_MEAN_OFFSET, col);
  let e = pre_activation_coef(col);
  var sumDy = 0.0;
  var sumDyXmu = 0.0;
  for (var row = lane; row < params.rows; row += params.lanes) {
    let j = row * params.rowStride + col;
    let xk = load_x1(params.xBase + j) - k;
    let g = epilogue_grad1(load_dy1(params.dyBase + j), j, xk, e);
    sumDy += g;
    sumDyXmu += g * (xk - meanOffset);
  }
  partials[col * params.lanes + lane] = vec2f(sumDy, sumDyXmu);
}

// One invocation per channel: adds the channel's partials and writes the requested outputs.
@compute @workgroup_size(WORKGROUP_SIZE)
fn reduce_finalize(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wid: vec3u,
                   @builtin(num_workgroups) nwg: vec3u) {
  let c = invocation(wid, nwg, lid);
  if (c >= params.channels) { return; }
  let first = c * params.lanes;
  var sumDy = 0.0;
  var sumDyXmu = 0.0;
  for (var p = 0u; p < params.lanes; p++) {
    let part = partials[first + p];
    sumDy += part.x;
    sumDyXmu += part.y;
  }
  let inv = plane1(PLANE_INVSTD, c);
  if ((params.flags & FLAG_GRAD_WEIGHT) != 0u) {
    gradWeight[params.gradWeightBase + c] = sumDyXmu * inv;
  }
  if ((params.flags & FLAG_GRAD_BIAS) != 0u) {
    gradBias[params.gradBiasBase + c] = sumDy;
  }
  if ((params.flags & FLAG_INPUT_CONSTANTS) != 0u) {
    let m = f32(params.count);
    write_plane(PLANE_MEAN_DY, c, sumDy / m);
    // grad_weight / M · invstd in this order: invstd² alone underflows for data near 1e20.
    write_plane(PLANE_PROJ_SCALE, c, sumDyXmu * inv / m * inv);
  }
}

// Word i (base included) of the half-precision views: its two values, widened exactly.
fn load_xw(i: u32) -> vec2f {
  return unpack_half2(xWords[i]);
}

fn load_dyw(i: u32) -> vec2f {
  return unpack_half2(dyWords[i]);
}

// epilogue_grad1 for the two values of word i (relative), without the gradResidual store: (es, eh, ew) per value.
fn epilogue_grad_w(g: vec2f, i: u32, xk: vec2f, es: vec2f, eh: vec2f, ew: vec2f) -> vec2f {
  let p = vec3f(params.activationMin, params.activationMax, params.activationSlope);
  var d = g;
  if (activation_masks_from_output()) {
    d = activation_grad_from_output4(vec4f(g, 0.0, 0.0), vec4f(unpack_half2(outputWords[params.outputBase + i]), 0.0, 0.0), p).xy;
  } else if (activation_uses_pre_activation()) {
    var t = fma(xk, es, eh);
    if (RESIDUAL) { t += unpack_half2(residualWords[params.residualBase + i]); }
    let g4 = vec4f(g, 0.0, 0.0);
    let t4 = vec4f(t, 0.0, 0.0);
    d = reduced4(g4, t4, activation_grad4(g4, t4, p, vec4f(ew, 0.0, 0.0))).xy;
  }
  return d;
}

// Channels-first, half precision with even spatial: reduce_cf4 over words (cols = spatial / 2).
@compute @workgroup_size(WORKGROUP_SIZE)
fn reduce_cf2h(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wid: vec3u,
               @builtin(num_workgroups) nwg: vec3u) {
  let c = channel_of(wid, nwg);
  let p = wid.x * WORKGROUP_SIZE + lid;
  if (c >= params.channels || p >= params.lanes) { return; }
  let k = vec2f(plane1(PLANE_SHIFT, c));
  let meanOffset = vec2f(plane1(PLANE_MEAN_OFFSET, c));
  let e = pre_activation_coef(c);
  let chan = c * params.cols;
  var sumDy = vec2f(0.0);
  var sumDyXmu = vec2f(0.0);
  let span = lane_columns(p);
  var rowStart = chan;
  for (var row = 0u; row < params.rows; row++) {
    let rowEnd = rowStart + span.y;
    for (var i = rowStart + span.x; i < rowEnd; i += span.z) {
      let xk = load_xw(params.xBase + i) - k;
      let g = epilogue_grad_w(load_dyw(params.dyBase + i), i, xk, vec2f(e.x), vec2f(e.y), vec2f(e.z));
      sumDy += g;
      sumDyXmu += g * (xk - meanOffset);
    }
    rowStart += params.rowStride;
  }
  partials[c * params.lanes + p] = vec2f(sumDy.x + sumDy.y, sumDyXmu.x + sumDyXmu.y);
}

// Channels-last, half precision with even C: invocation i owns channels 2·col and 2·col + 1.
@compute @workgroup_size(WORKGROUP_SIZE)
fn reduce_cl2h(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wid: vec3u,
               @builtin(num_workgroups) nwg: vec3u) {
  let i = invocation(wid, nwg, lid);
  if (i >= params.lanes * params.cols) { return; }
  let col = i % params.cols;
  let lane = i / params.cols;
  let c0 = 2u * col;
  let k = vec2f(plane1(PLANE_SHIFT, c0), plane1(PLANE_SHIFT, c0 + 1u));
  let meanOffset = vec2f(plane1(PLANE_MEAN_OFFSET, c0), plane1(PLANE_MEAN_OFFSET, c0 + 1u));
  let e0 = pre_activation_coef(c0);
  let e1 = pre_activation_coef(c0 + 1u);
  var sumDy = vec2f(0.0);
  var sumDyXmu = vec2f(0.0);
  for (var row = lane; row < params.rows; row += params.lanes) {
    let j = row * params.rowStride + col;
    let xk = load_xw(params.xBase + j) - k;
    let g = epilogue_grad_w(load_dyw(params.dyBase + j), j, xk, vec2f(e0.x, e1.x), vec2f(e0.y, e1.y), vec2f(e0.z, e1.z));
    sumDy += g;
    sumDyXmu += g * (xk - meanOffset);
  }
  partials[c0 * params.lanes + lane] = vec2f(sumDy.x, sumDyXmu.x);
  partials[(c0 + 1u) * params.lanes + lane] = vec2f(sumDy.y, sumDyXmu.y);
}
