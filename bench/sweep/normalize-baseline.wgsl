// Baseline for bench/sweep: shaders/normalize.wgsl as it was before the sweep (commit 5c4e877),
// kept so the sweep can time the old and the new library kernel side by side in one run.
// Not library code.
//
// Batch-norm stage 3 of 3: the fused normalize + affine elementwise pass,
//   y = (x - K[c]) * scale[c] + shiftedBias[c]
// one subtract and one FMA per element. In training the per-channel constants come from
// finalize.wgsl; in evaluation (FROM_RUNNING) each invocation derives its channel's constants from
// running_mean / running_var / weight / bias itself, so inference is a single dispatch, and
// invocations 0..C-1 also store them in channelStats for a later backward.
//
// The tensor is viewed as a rows x cols matrix:
//   channels-first: row = n * C + c (one (n, c) plane), cols = spatial (/4 for vec4);
//   channels-last:  row = n * spatial + s,              cols = C (/4 for vec4).
// Invocation i owns column i % cols and rows lane, lane + lanes, ... (lane = i / cols): flat index
// i, i + lanes·cols, ... So at every
// step neighbouring invocations touch neighbouring addresses (coalesced), there is no division per
// element, and the channel constants are loaded once per invocation: channels-last fixes the
// channel by the column, and channels-first fixes it whenever `lanes` is a multiple of C (the host
// chooses such a `lanes` when it can; otherwise the channel is stepped and reloaded per row).

struct NormalizeParams {
  rows: u32,
  cols: u32,
  lanes: u32,        // rows processed in parallel; invocations = lanes * cols
  channels: u32,
  laneChannelStep: u32, // channels-first: lanes % C (0: the channel never changes)
  xBase: u32,        // element offsets inside the bindings, in bound elements
  yBase: u32,
  planeStride: u32,  // ceil(C / 4): vec4s per plane of channelStats
  flags: u32,        // FLAG_* below
  eps: f32,
  weightBase: u32,   // element offsets of the per-channel tensors inside their bindings
  biasBase: u32,
  runningMeanBase: u32,
  runningVarBase: u32,
  blocksPerRow: u32, // CONTIGUOUS: ceil(cols / BLOCK_ITEMS)
  _pad0: u32,
}

const FLAG_FROM_RUNNING: u32 = 1u;
const FLAG_AFFINE: u32 = 2u;

@group(0) @binding(0) var<uniform> params: NormalizeParams;
@group(0) @binding(1) var<storage, read> x: array<vec4f>;
@group(0) @binding(1) var<storage, read> xScalar: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<vec4f>;
@group(0) @binding(2) var<storage, read_write> yScalar: array<f32>;
@group(0) @binding(3) var<storage, read_write> channelStats: array<vec4f>;
@group(0) @binding(4) var<storage, read> weight: array<f32>;
@group(0) @binding(5) var<storage, read> bias: array<f32>;
@group(0) @binding(6) var<storage, read> runningMean: array<f32>;
@group(0) @binding(7) var<storage, read> runningVar: array<f32>;

override WORKGROUP_SIZE: u32 = 64u;
// Access pattern. false (GPUs): the coalesced row-lane walk described above. true (fallback
// adapters, which run each invocation as a CPU loop): channels-first invocation i owns one
// contiguous run of BLOCK_ITEMS elements of one row, the pattern CPU caches and prefetchers want.
override CONTIGUOUS: bool = false;
override BLOCK_ITEMS: u32 = 16u;

// vec4(K, scale, shiftedBias, invstd) of channel c from the running statistics.
fn from_running(c: u32) -> vec4f {
  let invstd = 1.0 / sqrt(runningVar[params.runningVarBase + c] + params.eps);
  var w = 1.0;
  var b = 0.0;
  if ((params.flags & FLAG_AFFINE) != 0u) {
    w = weight[params.weightBase + c];
    b = bias[params.biasBase + c];
  }
  return vec4f(runningMean[params.runningMeanBase + c], w * invstd, b, invstd);
}

// Channel c's constants: channelStats (see finalize.wgsl) holds from 8 * planeStride one
// vec4(K, scale, shiftedBias, 0) per channel.
fn packed(c: u32) -> vec4f {
  if ((params.flags & FLAG_FROM_RUNNING) != 0u) { return from_running(c); }
  return channelStats[8u * params.planeStride + c];
}

fn write_plane(plane: u32, c: u32, v: f32) {
  channelStats[plane * params.planeStride + (c >> 2u)][c & 3u] = v;
}

// Evaluation only: invocation c < C records its channel's constants in finalize.wgsl's layout
// (planes 0 K, 1 scale, 2 shiftedBias, 3 mean, 4 invstd, 5 meanOffset, then the packed vec4).
fn record_running(i: u32) {
  if ((params.flags & FLAG_FROM_RUNNING) == 0u || i >= params.channels) { return; }
  let k = from_running(i);
  write_plane(0u, i, k.x);
  write_plane(1u, i, k.y);
  write_plane(2u, i, k.z);
  write_plane(3u, i, k.x);
  write_plane(4u, i, k.w);
  write_plane(5u, i, 0.0);
  channelStats[8u * params.planeStride + i] = vec4f(k.x, k.y, k.z, 0.0);
}

// Constants of channels 4·c4 .. 4·c4+3 as (K, scale, shiftedBias) vectors.
fn packed4(c4: u32) -> array<vec4f, 3> {
  if ((params.flags & FLAG_FROM_RUNNING) == 0u) {
    let base = c4 + 0u;
    return array<vec4f, 3>(channelStats[base], channelStats[params.planeStride + base],
                           channelStats[2u * params.planeStride + base]);
  }
  var k: vec4f;
  var scale: vec4f;
  var shift: vec4f;
  for (var l = 0u; l < 4u; l++) {
    let p = from_running(c4 * 4u + l);
    k[l] = p.x;
    scale[l] = p.y;
    shift[l] = p.z;
  }
  return array<vec4f, 3>(k, scale, shift);
}

fn invocation(wid: vec3u, nwg: vec3u, lid: u32) -> u32 {
  return (wid.x + wid.y * nwg.x) * WORKGROUP_SIZE + lid;
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn normalize_cf4(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wid: vec3u,
                 @builtin(num_workgroups) nwg: vec3u) {
  let i = invocation(wid, nwg, lid);
  record_running(i);
  if (CONTIGUOUS) {
    let row = i / params.blocksPerRow;
    if (row >= params.rows) { return; }
    let k = packed(row % params.channels);
    let xb = params.xBase;
    let yb = params.yBase;
    let rowStart = row * params.cols;
    let start = rowStart + (i - row * params.blocksPerRow) * BLOCK_ITEMS;
    let end = min(start + BLOCK_ITEMS, rowStart + params.cols);
    for (var j = start; j < end; j++) {
      y[yb + j] = fma(x[xb + j] - vec4f(k.x), vec4f(k.y), vec4f(k.z));
    }
    return;
  }
  if (i >= params.lanes * params.cols) { return; }
  let row = i / params.cols;
  var c = row % params.channels;
  var k = packed(c);
  let step = params.lanes * params.cols;
  let total = params.rows * params.cols;
  let xb = params.xBase;
  let yb = params.yBase;
  // Two loops rather than a branch inside one: software adapters pay for a branch per element.
  if (params.laneChannelStep == 0u) {
    for (var j = i; j < total; j += step) {
      y[yb + j] = fma(x[xb + j] - vec4f(k.x), vec4f(k.y), vec4f(k.z));
    }
    return;
  }
  for (var j = i; j < total; j += step) {
    y[yb + j] = fma(x[xb + j] - vec4f(k.x), vec4f(k.y), vec4f(k.z));
    c += params.laneChannelStep;
    if (c >= params.channels) { c -= params.channels; }
    k = packed(c);
  }
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn normalize_cf1(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wid: vec3u,
                 @builtin(num_workgroups) nwg: vec3u) {
  let i = invocation(wid, nwg, lid);
  record_running(i);
  if (CONTIGUOUS) {
    let row = i / params.blocksPerRow;
    if (row >= params.rows) { return; }
    let k = packed(row % params.channels);
    let xb = params.xBase;
    let yb = params.yBase;
    let rowStart = row * params.cols;
    let start = rowStart + (i - row * params.blocksPerRow) * BLOCK_ITEMS;
    let end = min(start + BLOCK_ITEMS, rowStart + params.cols);
    for (var j = start; j < end; j++) {
      yScalar[yb + j] = fma(xScalar[xb + j] - k.x, k.y, k.z);
    }
    return;
  }
  if (i >= params.lanes * params.cols) { return; }
  let row = i / params.cols;
  var c = row % params.channels;
  var k = packed(c);
  let step = params.lanes * params.cols;
  let total = params.rows * params.cols;
  let xb = params.xBase;
  let yb = params.yBase;
  // Two loops rather than a branch inside one: software adapters pay for a branch per element.
  if (params.laneChannelStep == 0u) {
    for (var j = i; j < total; j += step) {
      yScalar[yb + j] = fma(xScalar[xb + j] - k.x, k.y, k.z);
    }
    return;
  }
  for (var j = i; j < total; j += step) {
    yScalar[yb + j] = fma(xScalar[xb + j] - k.x, k.y, k.z);
    c += params.laneChannelStep;
    if (c >= params.channels) { c -= params.channels; }
    k = packed(c);
  }
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn normalize_cl4(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wid: vec3u,
                 @builtin(num_workgroups) nwg: vec3u) {
  let i = invocation(wid, nwg, lid);
  record_running(i);
  if (i >= params.lanes * params.cols) { return; }
  let col = i % params.cols;
  let constants = packed4(col);
  let k = constants[0];
  let scale = constants[1];
  let shift = constants[2];
  let step = params.lanes * params.cols;
  let total = params.rows * params.cols;
  let xb = params.xBase;
  let yb = params.yBase;
  for (var j = i; j < total; j += step) {
    y[yb + j] = fma(x[xb + j] - k, scale, shift);
  }
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn normalize_cl1(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wid: vec3u,
                 @builtin(num_workgroups) nwg: vec3u) {
  let i = invocation(wid, nwg, lid);
  record_running(i);
  if (i >= params.lanes * params.cols) { return; }
  let col = i % params.cols;
  let constants = packed(col);
  let k = constants.x;
  let scale = constants.y;
  let shift = constants.z;
  let step = params.lanes * params.cols;
  let total = params.rows * params.cols;
  let xb = params.xBase;
  let yb = params.yBase;
  for (var j = i; j < total; j += step) {
    yScalar[yb + j] = fma(xScalar[xb + j] - k, scale, shift);
  }
}
