// Batch-norm statistics, stage 1 of 3: per-channel partial (count, mean, M2) over a slice of the
// batch, with no workgroup barriers.
//
// Algorithm: every invocation runs Welford's update over its own strided slice of one channel
// (or, channels-last, of four neighbouring channels) and writes one partial; `finalize.wgsl` merges
// the partials of a channel with Chan et al.'s pairwise formula. This is the split used by PyTorch's
// CUDA kernel (aten/src/ATen/native/cuda/Normalization.cuh: Welford per thread, Chan merge) without
// its shared-memory tree, because workgroup barriers are the slowest thing on software adapters and
// a barrier-free split keeps every channel spread over many workgroups whatever C is.
//
// Exactness: values are shifted by K = the channel's first element before accumulation. x - K is
// exact in float32 (Sterbenz) for data clustered around its mean, so a channel with mean 1e4 and
// standard deviation 0.1 is accumulated at the precision of its spread, not of its offset.
//
// Each partial is vec4(bitcast<f32>(count), mean of (x - K), M2, K).
//
// Data views (all sizes in units of the bound element type, vec4 or scalar):
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
@group(0) @binding(2) var<storage, read_write> partials: array<vec4f>;

override WORKGROUP_SIZE: u32 = 64u;

struct Welford4 {
  n: u32,
  mean: vec4f,
  m2: vec4f,
}

fn welford_push4(s: ptr<function, Welford4>, v: vec4f) {
  (*s).n += 1u;
  let d = v - (*s).mean;
  (*s).mean += d * (1.0 / f32((*s).n));
  (*s).m2 += d * (v - (*s).mean);
}

fn load1(i: u32) -> f32 {
  return x[i >> 2u][i & 3u];
}

// Merges the four equal-count lanes of a vec4 Welford state into one (count, mean, M2).
fn collapse_lanes(s: Welford4, k: f32) -> vec4f {
  let mean = dot(s.mean, vec4f(0.25));
  let dm = s.mean - vec4f(mean);
  let m2 = dot(s.m2, vec4f(1.0)) + f32(s.n) * dot(dm, dm);
  return vec4f(bitcast<f32>(s.n * 4u), mean, m2, k);
}

fn partial_of(n: u32, mean: f32, m2: f32, k: f32) -> vec4f {
  return vec4f(bitcast<f32>(n), mean, m2, k);
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
  var s = Welford4(0u, vec4f(0.0), vec4f(0.0));
  var row = p / params.cols;
  var col = p % params.cols;
  loop {
    if (row >= params.rows) { break; }
    welford_push4(&s, x[chan + row * params.rowStride + col] - vec4f(k));
    col += params.stepCol;
    row += params.stepRow;
    if (col >= params.cols) { col -= params.cols; row += 1u; }
  }
  partials[c * params.lanes + p] = collapse_lanes(s, k);
}

// Channels-first, scalar loads (any spatial size).
@compute @workgroup_size(WORKGROUP_SIZE)
fn stats_cf1(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wid: vec3u,
             @builtin(num_workgroups) nwg: vec3u) {
  let c = channel_of(wid, nwg);
  let p = wid.x * WORKGROUP_SIZE + lid;
  if (c >= params.channels || p >= params.lanes) { return; }
  let chan = params.base + c * params.cols;
  let k = load1(chan);
  var n = 0u;
  var mean = 0.0;
  var m2 = 0.0;
  var row = p / params.cols;
  var col = p % params.cols;
  loop {
    if (row >= params.rows) { break; }
    let v = load1(chan + row * params.rowStride + col) - k;
    n += 1u;
    let d = v - mean;
    mean += d / f32(n);
    m2 += d * (v - mean);
    col += params.stepCol;
    row += params.stepRow;
    if (col >= params.cols) { col -= params.cols; row += 1u; }
  }
  partials[c * params.lanes + p] = partial_of(n, mean, m2, k);
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
  var s = Welford4(0u, vec4f(0.0), vec4f(0.0));
  for (var row = lane; row < params.rows; row += params.lanes) {
    welford_push4(&s, x[params.base + row * params.rowStride + col] - k);
  }
  let c0 = col * 4u;
  for (var l = 0u; l < 4u; l++) {
    partials[(c0 + l) * params.lanes + lane] = partial_of(s.n, s.mean[l], s.m2[l], k[l]);
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
  let k = load1(params.base + col);
  var n = 0u;
  var mean = 0.0;
  var m2 = 0.0;
  for (var row = lane; row < params.rows; row += params.lanes) {
    let v = load1(params.base + row * params.rowStride + col) - k;
    n += 1u;
    let d = v - mean;
    mean += d / f32(n);
    m2 += d * (v - mean);
  }
  partials[col * params.lanes + lane] = partial_of(n, mean, m2, k);
}
