// Batch-norm stage 3 of 3: the fused normalize + affine elementwise pass,
//   y = (x - K[c]) * scale[c] + shiftedBias[c]
// one subtract and one FMA per element, with the per-channel constants from finalize.wgsl. Both
// training and evaluation end here.
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
}

@group(0) @binding(0) var<uniform> params: NormalizeParams;
@group(0) @binding(1) var<storage, read> x: array<vec4f>;
@group(0) @binding(1) var<storage, read> xScalar: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<vec4f>;
@group(0) @binding(2) var<storage, read_write> yScalar: array<f32>;
@group(0) @binding(3) var<storage, read> channelStats: array<vec4f>;

override WORKGROUP_SIZE: u32 = 64u;

// channelStats (see finalize.wgsl): planes 0 K, 1 scale, 2 shiftedBias, and from 8 * planeStride
// one vec4(K, scale, shiftedBias, 0) per channel for channels-first readers.
fn packed(c: u32) -> vec4f {
  return channelStats[8u * params.planeStride + c];
}

fn plane4(plane: u32, c4: u32) -> vec4f {
  return channelStats[plane * params.planeStride + c4];
}

fn plane1(plane: u32, c: u32) -> f32 {
  return channelStats[plane * params.planeStride + (c >> 2u)][c & 3u];
}

fn invocation(wid: vec3u, nwg: vec3u, lid: u32) -> u32 {
  return (wid.x + wid.y * nwg.x) * WORKGROUP_SIZE + lid;
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn normalize_cf4(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wid: vec3u,
                 @builtin(num_workgroups) nwg: vec3u) {
  let i = invocation(wid, nwg, lid);
  if (i >= params.lanes * params.cols) { return; }
  let row = i / params.cols;
  var c = row % params.channels;
  var k = packed(c);
  let step = params.lanes * params.cols;
  let total = params.rows * params.cols;
  for (var j = i; j < total; j += step) {
    y[params.yBase + j] = fma(x[params.xBase + j] - vec4f(k.x), vec4f(k.y), vec4f(k.z));
    if (params.laneChannelStep != 0u) {
      c += params.laneChannelStep;
      if (c >= params.channels) { c -= params.channels; }
      k = packed(c);
    }
  }
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn normalize_cf1(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wid: vec3u,
                 @builtin(num_workgroups) nwg: vec3u) {
  let i = invocation(wid, nwg, lid);
  if (i >= params.lanes * params.cols) { return; }
  let row = i / params.cols;
  var c = row % params.channels;
  var k = packed(c);
  let step = params.lanes * params.cols;
  let total = params.rows * params.cols;
  for (var j = i; j < total; j += step) {
    yScalar[params.yBase + j] = fma(xScalar[params.xBase + j] - k.x, k.y, k.z);
    if (params.laneChannelStep != 0u) {
      c += params.laneChannelStep;
      if (c >= params.channels) { c -= params.channels; }
      k = packed(c);
    }
  }
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn normalize_cl4(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wid: vec3u,
                 @builtin(num_workgroups) nwg: vec3u) {
  let i = invocation(wid, nwg, lid);
  if (i >= params.lanes * params.cols) { return; }
  let col = i % params.cols;
  let k = plane4(0u, col);
  let scale = plane4(1u, col);
  let shift = plane4(2u, col);
  let step = params.lanes * params.cols;
  let total = params.rows * params.cols;
  for (var j = i; j < total; j += step) {
    y[params.yBase + j] = fma(x[params.xBase + j] - k, scale, shift);
  }
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn normalize_cl1(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wid: vec3u,
                 @builtin(num_workgroups) nwg: vec3u) {
  let i = invocation(wid, nwg, lid);
  if (i >= params.lanes * params.cols) { return; }
  let col = i % params.cols;
  let k = plane1(0u, col);
  let scale = plane1(1u, col);
  let shift = plane1(2u, col);
  let step = params.lanes * params.cols;
  let total = params.rows * params.cols;
  for (var j = i; j < total; j += step) {
    yScalar[params.yBase + j] = fma(xScalar[params.xBase + j] - k, scale, shift);
  }
}
