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
// Exactness: x − mean is formed as (x − K) − meanOffset with the shift K and meanOffset = mean − K
// that the forward's finalize stored (channelStats planes PLANE_SHIFT and PLANE_MEAN_OFFSET): x − K is exact in float32 for
// data clustered around its mean, so offset data (mean 1e4, std 0.1) keeps the precision of its
// spread. The statistics are never recomputed.
//
// channelStats planes (layout: common/prelude.wgsl): read PLANE_SHIFT (K), PLANE_INVSTD and
// PLANE_MEAN_OFFSET; reduce_finalize writes PLANE_MEAN_DY = sumDy / M and PLANE_PROJ_SCALE =
// sumDyXmu / M · invstd² for backward-elementwise.wgsl. backward_prepare fills planes PLANE_SHIFT,
// PLANE_MEAN, PLANE_INVSTD and PLANE_MEAN_OFFSET from caller-given mean / invstd (or running
// variance) for the functional API, with K = mean and meanOffset = 0.

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
  flags: u32,         // FLAG_GRAD_WEIGHT | FLAG_GRAD_BIAS | FLAG_INPUT_CONSTANTS | FLAG_FROM_VAR (common/prelude.wgsl)
  count: u32,         // M = N * spatial, values per channel
  gradWeightBase: u32,
  gradBiasBase: u32,
  meanBase: u32,      // backward_prepare: element offsets of its inputs
  invstdBase: u32,
  eps: f32,           // backward_prepare with FLAG_FROM_VAR
  _pad0: u32,
  _pad1: u32,
  _pad2: u32,
}

@group(0) @binding(0) var<uniform> params: BackwardParams;
@group(0) @binding(1) var<storage, read> x: array<vec4f>;
@group(0) @binding(1) var<storage, read> xScalar: array<f32>;
@group(0) @binding(2) var<storage, read> dy: array<vec4f>;
@group(0) @binding(2) var<storage, read> dyScalar: array<f32>;
@group(0) @binding(3) var<storage, read_write> partials: array<vec2f>;
@group(0) @binding(4) var<storage, read_write> channelStats: array<vec4f>;
@group(0) @binding(5) var<storage, read_write> gradWeight: array<f32>;
@group(0) @binding(6) var<storage, read_write> gradBias: array<f32>;
@group(0) @binding(7) var<storage, read> mean: array<f32>;
@group(0) @binding(8) var<storage, read> invstd: array<f32>;

// Channels-first column assignment (lane_columns, common/lane-columns.wgsl), as in stats.wgsl:
// false (GPUs) columns p, p + lanes, ... (coalesced); true (fallback adapters) the contiguous
// columns [p·colsPerLane, (p + 1)·colsPerLane).
override CONTIGUOUS: bool = false;

fn load_x1(i: u32) -> f32 {
  return xScalar[i];
}

fn load_dy1(i: u32) -> f32 {
  return dyScalar[i];
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
  let chan = c * params.cols;
  var sumDy = vec4f(0.0);
  var sumDyXmu = vec4f(0.0);
  let span = lane_columns(p);
  var rowStart = chan;
  for (var row = 0u; row < params.rows; row++) {
    let rowEnd = rowStart + span.y;
    for (var i = rowStart + span.x; i < rowEnd; i += span.z) {
      let g = dy[params.dyBase + i];
      sumDy += g;
      sumDyXmu += g * ((x[params.xBase + i] - k) - meanOffset);
    }
    rowStart += params.rowStride;
  }
  partials[c * params.lanes + p] = vec2f(dot(sumDy, vec4f(1.0)), dot(sumDyXmu, vec4f(1.0)));
}

// Channels-first, scalar loads (any spatial size or alignment).
@compute @workgroup_size(WORKGROUP_SIZE)
fn reduce_cf1(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wid: vec3u,
              @builtin(num_workgroups) nwg: vec3u) {
  let c = channel_of(wid, nwg);
  let p = wid.x * WORKGROUP_SIZE + lid;
  if (c >= params.channels || p >= params.lanes) { return; }
  let k = plane1(PLANE_SHIFT, c);
  let meanOffset = plane1(PLANE_MEAN_OFFSET, c);
  let chan = c * params.cols;
  var sumDy = 0.0;
  var sumDyXmu = 0.0;
  let span = lane_columns(p);
  var rowStart = chan;
  for (var row = 0u; row < params.rows; row++) {
    let rowEnd = rowStart + span.y;
    for (var i = rowStart + span.x; i < rowEnd; i += span.z) {
      let g = load_dy1(params.dyBase + i);
      sumDy += g;
      sumDyXmu += g * ((load_x1(params.xBase + i) - k) - meanOffset);
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
  var sumDy = vec4f(0.0);
  var sumDyXmu = vec4f(0.0);
  for (var row = lane; row < params.rows; row += params.lanes) {
    let j = row * params.rowStride + col;
    let g = dy[params.dyBase + j];
    sumDy += g;
    sumDyXmu += g * ((x[params.xBase + j] - k) - meanOffset);
  }
  let c0 = col * 4u;
  for (var l = 0u; l < 4u; l++) {
    partials[(c0 + l) * params.lanes + lane] = vec2f(sumDy[l], sumDyXmu[l]);
  }
}

// Channels-last, scalar loads (any C or alignment).
@compute @workgroup_size(WORKGROUP_SIZE)
fn reduce_cl1(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wid: vec3u,
              @builtin(num_workgroups) nwg: vec3u) {
  let i = invocation(wid, nwg, lid);
  if (i >= params.lanes * params.cols) { return; }
  let col = i % params.cols;
  let lane = i / params.cols;
  let k = plane1(PLANE_SHIFT, col);
  let meanOffset = plane1(PLANE_MEAN_OFFSET, col);
  var sumDy = 0.0;
  var sumDyXmu = 0.0;
  for (var row = lane; row < params.rows; row += params.lanes) {
    let j = row * params.rowStride + col;
    let g = load_dy1(params.dyBase + j);
    sumDy += g;
    sumDyXmu += g * ((load_x1(params.xBase + j) - k) - meanOffset);
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
  write_plane(PLANE_SHIFT, c, m);
  write_plane(PLANE_MEAN, c, m);
  write_plane(PLANE_INVSTD, c, inv);
  write_plane(PLANE_MEAN_OFFSET, c, 0.0);
}
