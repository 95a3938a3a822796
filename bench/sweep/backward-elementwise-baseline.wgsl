// Baseline for bench/sweep: shaders/backward-elementwise.wgsl as it was before the sweep (commit
// 5c4e877), kept so the sweep can time the old and the new kernel side by side. Not library code.
//
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
// Per channel this is dx = dy·A − (x − K)·B + D with A = invstd·weight, B = projScale·A and
// D = (meanOffset·projScale − meanDy)·A, so each invocation loads its channel's constants once.
//
// Iteration is normalize.wgsl's: the tensor as rows × cols (channels-first: row = n·C + c, cols =
// spatial; channels-last: row = n·spatial + s, cols = C; /4 for vec4); invocation i owns column
// i % cols of rows lane, lane + lanes, ... so neighbours touch neighbouring addresses, and its
// channel is fixed (channels-last always; channels-first when lanes is a multiple of C).

struct ElementwiseParams {
  rows: u32,
  cols: u32,
  lanes: u32,           // rows processed in parallel; invocations = lanes * cols
  channels: u32,
  laneChannelStep: u32, // channels-first: lanes % C (0: the channel never changes)
  xBase: u32,           // offsets of element 0 in each binding, in bound elements
  dyBase: u32,
  dxBase: u32,
  weightBase: u32,      // in f32 elements
  planeStride: u32,     // ceil(C / 4)
  flags: u32,           // FLAG_AFFINE
  blocksPerRow: u32,    // CONTIGUOUS: ceil(cols / BLOCK_ITEMS)
}

const FLAG_AFFINE: u32 = 1u;

@group(0) @binding(0) var<uniform> params: ElementwiseParams;
@group(0) @binding(1) var<storage, read> x: array<vec4f>;
@group(0) @binding(1) var<storage, read> xScalar: array<f32>;
@group(0) @binding(2) var<storage, read> dy: array<vec4f>;
@group(0) @binding(2) var<storage, read> dyScalar: array<f32>;
@group(0) @binding(3) var<storage, read_write> dx: array<vec4f>;
// The scalar entries write through an f32 view: a store to one component of a shared vec4 may be
// lowered to a read-modify-write of the whole vector, which would race with the neighbours.
@group(0) @binding(3) var<storage, read_write> dxScalar: array<f32>;
@group(0) @binding(4) var<storage, read> channelStats: array<vec4f>;
@group(0) @binding(5) var<storage, read> weight: array<f32>;

override WORKGROUP_SIZE: u32 = 64u;
// true: training formula (batch statistics); false: running statistics.
override BATCH_STATS: bool = true;
// Access pattern, as in normalize.wgsl: true on fallback adapters, where channels-first
// invocation i owns one contiguous run of BLOCK_ITEMS elements of one row.
override CONTIGUOUS: bool = false;
override BLOCK_ITEMS: u32 = 16u;

fn plane1(plane: u32, c: u32) -> f32 {
  return channelStats[plane * params.planeStride + (c >> 2u)][c & 3u];
}

// vec4(K, A, B, D) of channel c (see the header).
fn coef(c: u32) -> vec4f {
  var w = 1.0;
  if ((params.flags & FLAG_AFFINE) != 0u) { w = weight[params.weightBase + c]; }
  let a = plane1(4u, c) * w;
  if (!BATCH_STATS) { return vec4f(0.0, a, 0.0, 0.0); }
  let proj = plane1(7u, c);
  return vec4f(plane1(0u, c), a, proj * a, (plane1(5u, c) * proj - plane1(6u, c)) * a);
}

fn invocation(wid: vec3u, nwg: vec3u, lid: u32) -> u32 {
  return (wid.x + wid.y * nwg.x) * WORKGROUP_SIZE + lid;
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn elementwise_cf4(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wid: vec3u,
                   @builtin(num_workgroups) nwg: vec3u) {
  let i = invocation(wid, nwg, lid);
  if (CONTIGUOUS) {
    let row = i / params.blocksPerRow;
    if (row >= params.rows) { return; }
    let k = coef(row % params.channels);
    let xb = params.xBase;
    let gb = params.dyBase;
    let ob = params.dxBase;
    let rowStart = row * params.cols;
    let start = rowStart + (i - row * params.blocksPerRow) * BLOCK_ITEMS;
    let end = min(start + BLOCK_ITEMS, rowStart + params.cols);
    for (var j = start; j < end; j++) {
      if (BATCH_STATS) {
        dx[ob + j] = dy[gb + j] * k.y - (x[xb + j] - vec4f(k.x)) * k.z + vec4f(k.w);
      } else {
        dx[ob + j] = dy[gb + j] * k.y;
      }
    }
    return;
  }
  if (i >= params.lanes * params.cols) { return; }
  var c = (i / params.cols) % params.channels;
  var k = coef(c);
  let step = params.lanes * params.cols;
  let total = params.rows * params.cols;
  let xb = params.xBase;
  let gb = params.dyBase;
  let ob = params.dxBase;
  // Two loops rather than a branch inside one: software adapters pay for a branch per element.
  if (params.laneChannelStep == 0u) {
    for (var j = i; j < total; j += step) {
      if (BATCH_STATS) {
        dx[ob + j] = dy[gb + j] * k.y - (x[xb + j] - vec4f(k.x)) * k.z + vec4f(k.w);
      } else {
        dx[ob + j] = dy[gb + j] * k.y;
      }
    }
    return;
  }
  for (var j = i; j < total; j += step) {
    if (BATCH_STATS) {
      dx[ob + j] = dy[gb + j] * k.y - (x[xb + j] - vec4f(k.x)) * k.z + vec4f(k.w);
    } else {
      dx[ob + j] = dy[gb + j] * k.y;
    }
    c += params.laneChannelStep;
    if (c >= params.channels) { c -= params.channels; }
    k = coef(c);
  }
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn elementwise_cf1(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wid: vec3u,
                   @builtin(num_workgroups) nwg: vec3u) {
  let i = invocation(wid, nwg, lid);
  if (CONTIGUOUS) {
    let row = i / params.blocksPerRow;
    if (row >= params.rows) { return; }
    let k = coef(row % params.channels);
    let xb = params.xBase;
    let gb = params.dyBase;
    let ob = params.dxBase;
    let rowStart = row * params.cols;
    let start = rowStart + (i - row * params.blocksPerRow) * BLOCK_ITEMS;
    let end = min(start + BLOCK_ITEMS, rowStart + params.cols);
    for (var j = start; j < end; j++) {
      if (BATCH_STATS) {
        dxScalar[ob + j] = dyScalar[gb + j] * k.y - (xScalar[xb + j] - k.x) * k.z + k.w;
      } else {
        dxScalar[ob + j] = dyScalar[gb + j] * k.y;
      }
    }
    return;
  }
  if (i >= params.lanes * params.cols) { return; }
  var c = (i / params.cols) % params.channels;
  var k = coef(c);
  let step = params.lanes * params.cols;
  let total = params.rows * params.cols;
  let xb = params.xBase;
  let gb = params.dyBase;
  let ob = params.dxBase;
  if (params.laneChannelStep == 0u) {
    for (var j = i; j < total; j += step) {
      if (BATCH_STATS) {
        dxScalar[ob + j] = dyScalar[gb + j] * k.y - (xScalar[xb + j] - k.x) * k.z + k.w;
      } else {
        dxScalar[ob + j] = dyScalar[gb + j] * k.y;
      }
    }
    return;
  }
  for (var j = i; j < total; j += step) {
    if (BATCH_STATS) {
      dxScalar[ob + j] = dyScalar[gb + j] * k.y - (xScalar[xb + j] - k.x) * k.z + k.w;
    } else {
      dxScalar[ob + j] = dyScalar[gb + j] * k.y;
    }
    c += params.laneChannelStep;
    if (c >= params.channels) { c -= params.channels; }
    k = coef(c);
  }
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn elementwise_cl4(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wid: vec3u,
                   @builtin(num_workgroups) nwg: vec3u) {
  let i = invocation(wid, nwg, lid);
  if (i >= params.lanes * params.cols) { return; }
  let col = i % params.cols;
  var k: vec4f;
  var a: vec4f;
  var b: vec4f;
  var d: vec4f;
  for (var l = 0u; l < 4u; l++) {
    let cl = coef(col * 4u + l);
    k[l] = cl.x;
    a[l] = cl.y;
    b[l] = cl.z;
    d[l] = cl.w;
  }
  let step = params.lanes * params.cols;
  let total = params.rows * params.cols;
  let xb = params.xBase;
  let gb = params.dyBase;
  let ob = params.dxBase;
  for (var j = i; j < total; j += step) {
    if (BATCH_STATS) {
      dx[ob + j] = dy[gb + j] * a - (x[xb + j] - k) * b + d;
    } else {
      dx[ob + j] = dy[gb + j] * a;
    }
  }
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn elementwise_cl1(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wid: vec3u,
                   @builtin(num_workgroups) nwg: vec3u) {
  let i = invocation(wid, nwg, lid);
  if (i >= params.lanes * params.cols) { return; }
  let k = coef(i % params.cols);
  let step = params.lanes * params.cols;
  let total = params.rows * params.cols;
  let xb = params.xBase;
  let gb = params.dyBase;
  let ob = params.dxBase;
  for (var j = i; j < total; j += step) {
    if (BATCH_STATS) {
      dxScalar[ob + j] = dyScalar[gb + j] * k.y - (xScalar[xb + j] - k.x) * k.z + k.w;
    } else {
      dxScalar[ob + j] = dyScalar[gb + j] * k.y;
    }
  }
}
