// Batch-norm statistics, stage 1 of 3: per-channel partial (count, mean, M2) over a slice of the
// batch, with no workgroup barriers.
//
// Algorithm: every invocation accumulates shifted sums over its own strided slice of one channel
// (or, channels-last, of four neighbouring channels) and writes one partial; finalize.wgsl merges
// the partials of a channel with Chan et al.'s pairwise formula. This is the split of PyTorch's
// CUDA kernel (aten/src/ATen/native/cuda/Normalization.cuh: per-thread accumulation, Chan merge)
// without its shared-memory tree, because workgroup barriers are the slowest thing on software
// adapters and a barrier-free split keeps every channel spread over many workgroups whatever C is.
//
// Exactness without E[x²] − E[x]²: each invocation lane subtracts its own first value Kt before
// accumulating s1 = Σ(x − Kt) and s2 = Σ(x − Kt)². x − Kt is exact in float32 (Sterbenz) for data
// clustered around its mean, so a channel with mean 1e4 and std 0.1 is summed at the precision of
// its spread, not of its offset; and M2 = s2 − s1²/n only cancels by the factor
// 1 + ((mean − Kt)/σ)², i.e. not at all unless the lane's first value is a far outlier, and then
// only inside that one lane's partial (1/P of the channel). Shifted sums cost three operations per
// element where Welford needs a division, which matters on adapters that emulate the GPU in
// software. Partials are stored relative to the channel's own first value K, which finalize uses
// as the channel's reference point for the normalize stage.
//
// Each partial is vec4(bitcast<f32>(count), mean − K, M2, K).
//
// Data views (sizes in bound elements, vec4 or scalar):
//   channels-first: a channel is `rows` segments (one per batch item) of `cols` contiguous values,
//     segment r of channel c starting at base + r * rowStride + c * cols.
//   channels-last: row r holds every channel: value (r, col) at base + r * rowStride + col.
// Indices advance incrementally (a carry instead of a division per element).

struct StatsParams {
  rows: u32,        // channels-first: N; channels-last: N * spatial
  cols: u32,        // channels-first: spatial (/4 for vec4); channels-last: C (/4 for vec4)
  rowStride: u32,   // elements between consecutive rows
  lanes: u32,       // partials per channel (P)
  channels: u32,    // C
  base: u32,        // offset of element 0 in the binding, in bound elements
  stepRow: u32,     // channels-first: lanes / cols
  stepCol: u32,     // channels-first: lanes % cols
  wgPerChannel: u32,// channels-first: workgroups along x per channel
  _pad0: u32,
  _pad1: u32,
  _pad2: u32,
}

@group(0) @binding(0) var<uniform> params: StatsParams;
@group(0) @binding(1) var<storage, read> x: array<vec4f>;
@group(0) @binding(1) var<storage, read> xScalar: array<f32>;
@group(0) @binding(2) var<storage, read_write> partials: array<vec4f>;

override WORKGROUP_SIZE: u32 = 64u;

// (count, mean − K, M2) of one lane from its shifted sums around its own first value kt.
fn lane_partial(n: u32, kt: f32, k: f32, s1: f32, s2: f32) -> vec4f {
  if (n == 0u) { return vec4f(0.0, 0.0, 0.0, k); }
  let fn_ = f32(n);
  let d = s1 / fn_;
  return vec4f(bitcast<f32>(n), (kt - k) + d, max(s2 - s1 * d, 0.0), k);
}

// Chan merge of the four equal-count lanes of a vec4 accumulator into one partial.
fn collapse_lanes(n: u32, kt: vec4f, k: f32, s1: vec4f, s2: vec4f) -> vec4f {
  if (n == 0u) { return vec4f(0.0, 0.0, 0.0, k); }
  let fn_ = f32(n);
  let d = s1 / fn_;
  let means = (kt - vec4f(k)) + d;
  let m2s = max(s2 - s1 * d, vec4f(0.0));
  let mean = dot(means, vec4f(0.25));
  let dm = means - vec4f(mean);
  return vec4f(bitcast<f32>(n * 4u), mean, dot(m2s, vec4f(1.0)) + fn_ * dot(dm, dm), k);
}

fn channel_of(wid: vec3u, nwg: vec3u) -> u32 {
  return wid.y + wid.z * nwg.y;
}

// Channels-first, vec4 loads (spatial % 4 == 0): invocation p of channel c walks the channel's
// rows x cols matrix with stride `lanes`.
@compute @workgroup_size(WORKGROUP_SIZE)
fn stats_cf4(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wid: vec3u,
             @builtin(num_workgroups) nwg: vec3u) {
  let c = channel_of(wid, nwg);
  let p = wid.x * WORKGROUP_SIZE + lid;
  if (c >= params.channels || p >= params.lanes) { return; }
  let chan = params.base + c * params.cols;
  let k = x[chan].x;
  var row = p / params.cols;
  var col = p % params.cols;
  var n = 0u;
  var kt = vec4f(k);
  if (row < params.rows) { kt = x[chan + row * params.rowStride + col]; }
  var s1 = vec4f(0.0);
  var s2 = vec4f(0.0);
  loop {
    if (row >= params.rows) { break; }
    let v = x[chan + row * params.rowStride + col] - kt;
    s1 += v;
    s2 = fma(v, v, s2);
    n += 1u;
    col += params.stepCol;
    row += params.stepRow;
    if (col >= params.cols) { col -= params.cols; row += 1u; }
  }
  partials[c * params.lanes + p] = collapse_lanes(n, kt, k, s1, s2);
}

// Channels-first, scalar loads (any spatial size).
@compute @workgroup_size(WORKGROUP_SIZE)
fn stats_cf1(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wid: vec3u,
             @builtin(num_workgroups) nwg: vec3u) {
  let c = channel_of(wid, nwg);
  let p = wid.x * WORKGROUP_SIZE + lid;
  if (c >= params.channels || p >= params.lanes) { return; }
  let chan = params.base + c * params.cols;
  let k = xScalar[chan];
  var row = p / params.cols;
  var col = p % params.cols;
  var n = 0u;
  var kt = k;
  if (row < params.rows) { kt = xScalar[chan + row * params.rowStride + col]; }
  var s1 = 0.0;
  var s2 = 0.0;
  loop {
    if (row >= params.rows) { break; }
    let v = xScalar[chan + row * params.rowStride + col] - kt;
    s1 += v;
    s2 = fma(v, v, s2);
    n += 1u;
    col += params.stepCol;
    row += params.stepRow;
    if (col >= params.cols) { col -= params.cols; row += 1u; }
  }
  partials[c * params.lanes + p] = lane_partial(n, kt, k, s1, s2);
}

// Channels-last, vec4 loads (C % 4 == 0): invocation i owns channels 4*col..4*col+3 and every
// `lanes`-th row starting at its lane, so neighbouring invocations read neighbouring addresses.
@compute @workgroup_size(WORKGROUP_SIZE)
fn stats_cl4(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wid: vec3u,
             @builtin(num_workgroups) nwg: vec3u) {
  let i = (wid.x + wid.y * nwg.x) * WORKGROUP_SIZE + lid;
  if (i >= params.lanes * params.cols) { return; }
  let col = i % params.cols;
  let lane = i / params.cols;
  let k = x[params.base + col];
  var kt = k;
  if (lane < params.rows) { kt = x[params.base + lane * params.rowStride + col]; }
  var n = 0u;
  var s1 = vec4f(0.0);
  var s2 = vec4f(0.0);
  for (var row = lane; row < params.rows; row += params.lanes) {
    let v = x[params.base + row * params.rowStride + col] - kt;
    s1 += v;
    s2 = fma(v, v, s2);
    n += 1u;
  }
  let c0 = col * 4u;
  for (var l = 0u; l < 4u; l++) {
    partials[(c0 + l) * params.lanes + lane] = lane_partial(n, kt[l], k[l], s1[l], s2[l]);
  }
}

// Channels-last, scalar loads (any C).
@compute @workgroup_size(WORKGROUP_SIZE)
fn stats_cl1(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wid: vec3u,
             @builtin(num_workgroups) nwg: vec3u) {
  let i = (wid.x + wid.y * nwg.x) * WORKGROUP_SIZE + lid;
  if (i >= params.lanes * params.cols) { return; }
  let col = i % params.cols;
  let lane = i / params.cols;
  let k = xScalar[params.base + col];
  var kt = k;
  if (lane < params.rows) { kt = xScalar[params.base + lane * params.rowStride + col]; }
  var n = 0u;
  var s1 = 0.0;
  var s2 = 0.0;
  for (var row = lane; row < params.rows; row += params.lanes) {
    let v = xScalar[params.base + row * params.rowStride + col] - kt;
    s1 += v;
    s2 = fma(v, v, s2);
    n += 1u;
  }
  partials[col * params.lanes + lane] = lane_partial(n, kt, k, s1, s2);
}
