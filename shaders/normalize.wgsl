// Batch-norm stage 3 of 3: the fused normalize + affine elementwise pass,
//   y = (x - K[c]) * scale[c] + shiftedBias[c]
// one subtract and one FMA per element, with the per-channel constants from finalize.wgsl
// (planes 0, 1, 2 of channelStats). Both training and evaluation end here.
//
// Every invocation walks the tensor with a grid stride (`threads` = invocations dispatched), so
// consecutive invocations touch consecutive addresses. The channel of the current element is
// carried along incrementally (stepCol / stepChannel) instead of divided out per element.
//
// channels-first: flat index j = (n * C + c) * cols + col, cols = spatial (/4 for vec4).
// channels-last:  flat index j = row * cols + col, the channel(s) given by col, cols = C (/4).

struct NormalizeParams {
  total: u32,        // elements to write, in bound elements (vec4 or scalar)
  cols: u32,
  channels: u32,
  threads: u32,      // invocations in the dispatch
  stepCol: u32,      // threads % cols
  stepChannel: u32,  // channels-first: (threads / cols) % channels
  xBase: u32,
  yBase: u32,
  planeStride: u32,  // ceil(C / 4)
  _pad0: u32,
  _pad1: u32,
  _pad2: u32,
}

@group(0) @binding(0) var<uniform> params: NormalizeParams;
@group(0) @binding(1) var<storage, read> x: array<vec4f>;
@group(0) @binding(2) var<storage, read_write> y: array<vec4f>;
@group(0) @binding(3) var<storage, read> channelStats: array<vec4f>;

override WORKGROUP_SIZE: u32 = 64u;

fn plane1(plane: u32, c: u32) -> f32 {
  return channelStats[plane * params.planeStride + (c >> 2u)][c & 3u];
}

fn plane4(plane: u32, c4: u32) -> vec4f {
  return channelStats[plane * params.planeStride + c4];
}

fn invocation(wid: vec3u, nwg: vec3u, lid: u32) -> u32 {
  return (wid.x + wid.y * nwg.x) * WORKGROUP_SIZE + lid;
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn normalize_cf4(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wid: vec3u,
                 @builtin(num_workgroups) nwg: vec3u) {
  var j = invocation(wid, nwg, lid);
  if (j >= params.total) { return; }
  let q = j / params.cols;
  var col = j % params.cols;
  var c = q % params.channels;
  loop {
    if (j >= params.total) { break; }
    let v = x[params.xBase + j] - vec4f(plane1(0u, c));
    y[params.yBase + j] = fma(v, vec4f(plane1(1u, c)), vec4f(plane1(2u, c)));
    j += params.threads;
    col += params.stepCol;
    c += params.stepChannel;
    if (col >= params.cols) { col -= params.cols; c += 1u; }
    if (c >= params.channels) { c -= params.channels; }
  }
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn normalize_cf1(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wid: vec3u,
                 @builtin(num_workgroups) nwg: vec3u) {
  var j = invocation(wid, nwg, lid);
  if (j >= params.total) { return; }
  let q = j / params.cols;
  var col = j % params.cols;
  var c = q % params.channels;
  loop {
    if (j >= params.total) { break; }
    let xi = params.xBase + j;
    let yi = params.yBase + j;
    y[yi >> 2u][yi & 3u] = fma(x[xi >> 2u][xi & 3u] - plane1(0u, c), plane1(1u, c), plane1(2u, c));
    j += params.threads;
    col += params.stepCol;
    c += params.stepChannel;
    if (col >= params.cols) { col -= params.cols; c += 1u; }
    if (c >= params.channels) { c -= params.channels; }
  }
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn normalize_cl4(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wid: vec3u,
                 @builtin(num_workgroups) nwg: vec3u) {
  var j = invocation(wid, nwg, lid);
  if (j >= params.total) { return; }
  var col = j % params.cols;
  loop {
    if (j >= params.total) { break; }
    let v = x[params.xBase + j] - plane4(0u, col);
    y[params.yBase + j] = fma(v, plane4(1u, col), plane4(2u, col));
    j += params.threads;
    col += params.stepCol;
    if (col >= params.cols) { col -= params.cols; }
  }
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn normalize_cl1(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wid: vec3u,
                 @builtin(num_workgroups) nwg: vec3u) {
  var j = invocation(wid, nwg, lid);
  if (j >= params.total) { return; }
  var col = j % params.cols;
  loop {
    if (j >= params.total) { break; }
    let xi = params.xBase + j;
    let yi = params.yBase + j;
    y[yi >> 2u][yi & 3u] = fma(x[xi >> 2u][xi & 3u] - plane1(0u, col), plane1(1u, col), plane1(2u, col));
    j += params.threads;
    col += params.stepCol;
    if (col >= params.cols) { col -= params.cols; }
  }
}
