// Batch-norm backward, stage 2 of 2: grad_input, one elementwise pass over dy (and x).
//
// Algorithm and source: PyTorch's CUDA batch_norm_backward_elemt_kernel
// (aten/src/ATen/native/cuda/Normalization.cuh):
//   batch statistics (BATCH_STATS = true):
//     grad_input = (dy − meanDy[c] − (x − mean[c]) · projScale[c]) · invstd[c] · weight[c]
//     with meanDy = sumDy / M and projScale = sumDyXmu / M · invstd² from backward-reduce.wgsl
//     (channelStats planes 6 and 7) and x − mean formed as (x − K) − meanOffset (planes 0 and 5),
//     which is exact for data clustered around its mean.
//   running statistics (BATCH_STATS = false, PyTorch's eval-mode backward):
//     grad_input = dy · invstd[c] · weight[c], which needs no reduction at all.
// invstd is plane 4, written by the forward (or by backward_prepare); weight is read at backward
// time, and is 1 when the module is not affine (FLAG_AFFINE clear).
//
// Iteration is normalize.wgsl's: a grid stride over the flat tensor with the channel carried
// along incrementally.
//   channels-first: flat index j = (n * C + c) * cols + col, cols = spatial (/4 for vec4).
//   channels-last:  flat index j = row * cols + col, the channel(s) given by col, cols = C (/4).

struct ElementwiseParams {
  total: u32,        // elements to write, in bound elements (vec4 or scalar)
  cols: u32,
  channels: u32,
  threads: u32,      // invocations in the dispatch
  stepCol: u32,      // threads % cols
  stepChannel: u32,  // channels-first: (threads / cols) % channels
  xBase: u32,        // offsets of element 0 in each binding, in bound elements
  dyBase: u32,
  dxBase: u32,
  weightBase: u32,   // in f32 elements
  planeStride: u32,  // ceil(C / 4)
  flags: u32,        // FLAG_AFFINE
}

const FLAG_AFFINE: u32 = 1u;

@group(0) @binding(0) var<uniform> params: ElementwiseParams;
@group(0) @binding(1) var<storage, read> x: array<vec4f>;
@group(0) @binding(2) var<storage, read> dy: array<vec4f>;
@group(0) @binding(3) var<storage, read_write> dx: array<vec4f>;
// The scalar entries write through an f32 view: a store to one component of a shared vec4 may be
// lowered to a read-modify-write of the whole vector, which would race with the neighbours.
@group(0) @binding(3) var<storage, read_write> dx1: array<f32>;
@group(0) @binding(4) var<storage, read> channelStats: array<vec4f>;
@group(0) @binding(5) var<storage, read> weight: array<f32>;

override WORKGROUP_SIZE: u32 = 64u;
// true: training formula (batch statistics); false: running statistics.
override BATCH_STATS: bool = true;

fn plane1(plane: u32, c: u32) -> f32 {
  return channelStats[plane * params.planeStride + (c >> 2u)][c & 3u];
}

fn plane4(plane: u32, c4: u32) -> vec4f {
  return channelStats[plane * params.planeStride + c4];
}

fn weight1(c: u32) -> f32 {
  if ((params.flags & FLAG_AFFINE) == 0u) { return 1.0; }
  return weight[params.weightBase + c];
}

fn weight4(c4: u32) -> vec4f {
  if ((params.flags & FLAG_AFFINE) == 0u) { return vec4f(1.0); }
  let i = params.weightBase + c4 * 4u;
  return vec4f(weight[i], weight[i + 1u], weight[i + 2u], weight[i + 3u]);
}

fn invocation(wid: vec3u, nwg: vec3u, lid: u32) -> u32 {
  return (wid.x + wid.y * nwg.x) * WORKGROUP_SIZE + lid;
}

fn grad1(g: f32, xi: u32, c: u32) -> f32 {
  let gradScale = plane1(4u, c) * weight1(c);
  if (!BATCH_STATS) { return g * gradScale; }
  let xmu = (x[xi >> 2u][xi & 3u] - plane1(0u, c)) - plane1(5u, c);
  return (g - plane1(6u, c) - xmu * plane1(7u, c)) * gradScale;
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn elementwise_cf4(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wid: vec3u,
                   @builtin(num_workgroups) nwg: vec3u) {
  var j = invocation(wid, nwg, lid);
  if (j >= params.total) { return; }
  let q = j / params.cols;
  var col = j % params.cols;
  var c = q % params.channels;
  loop {
    if (j >= params.total) { break; }
    let g = dy[params.dyBase + j];
    let gradScale = vec4f(plane1(4u, c) * weight1(c));
    if (BATCH_STATS) {
      let xmu = (x[params.xBase + j] - vec4f(plane1(0u, c))) - vec4f(plane1(5u, c));
      dx[params.dxBase + j] = (g - vec4f(plane1(6u, c)) - xmu * vec4f(plane1(7u, c))) * gradScale;
    } else {
      dx[params.dxBase + j] = g * gradScale;
    }
    j += params.threads;
    col += params.stepCol;
    c += params.stepChannel;
    if (col >= params.cols) { col -= params.cols; c += 1u; }
    if (c >= params.channels) { c -= params.channels; }
  }
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn elementwise_cf1(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wid: vec3u,
                   @builtin(num_workgroups) nwg: vec3u) {
  var j = invocation(wid, nwg, lid);
  if (j >= params.total) { return; }
  let q = j / params.cols;
  var col = j % params.cols;
  var c = q % params.channels;
  loop {
    if (j >= params.total) { break; }
    let gi = params.dyBase + j;
    dx1[params.dxBase + j] = grad1(dy[gi >> 2u][gi & 3u], params.xBase + j, c);
    j += params.threads;
    col += params.stepCol;
    c += params.stepChannel;
    if (col >= params.cols) { col -= params.cols; c += 1u; }
    if (c >= params.channels) { c -= params.channels; }
  }
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn elementwise_cl4(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wid: vec3u,
                   @builtin(num_workgroups) nwg: vec3u) {
  var j = invocation(wid, nwg, lid);
  if (j >= params.total) { return; }
  var col = j % params.cols;
  loop {
    if (j >= params.total) { break; }
    let g = dy[params.dyBase + j];
    let gradScale = plane4(4u, col) * weight4(col);
    if (BATCH_STATS) {
      let xmu = (x[params.xBase + j] - plane4(0u, col)) - plane4(5u, col);
      dx[params.dxBase + j] = (g - plane4(6u, col) - xmu * plane4(7u, col)) * gradScale;
    } else {
      dx[params.dxBase + j] = g * gradScale;
    }
    j += params.threads;
    col += params.stepCol;
    if (col >= params.cols) { col -= params.cols; }
  }
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn elementwise_cl1(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wid: vec3u,
                   @builtin(num_workgroups) nwg: vec3u) {
  var j = invocation(wid, nwg, lid);
  if (j >= params.total) { return; }
  var col = j % params.cols;
  loop {
    if (j >= params.total) { break; }
    let gi = params.dyBase + j;
    dx1[params.dxBase + j] = grad1(dy[gi >> 2u][gi & 3u], params.xBase + j, col);
    j += params.threads;
    col += params.stepCol;
    if (col >= params.cols) { col -= params.cols; }
  }
}
