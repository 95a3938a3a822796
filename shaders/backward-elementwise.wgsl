// Batch-norm backward, stage 2 of 2: grad_input, one elementwise pass over dy (and x).
//
// Algorithm and source: PyTorch's CUDA batch_norm_backward_elemt_kernel
// (aten/src/ATen/native/cuda/Normalization.cuh):
//   batch statistics (BATCH_STATS = true):
//     grad_input = (dy − meanDy[c] − (x − mean[c]) · projScale[c]) · invstd[c] · weight[c]
//     with meanDy = sumDy / M and projScale = sumDyXmu / M · invstd² from backward-reduce.wgsl
//     (channelStats planes PLANE_MEAN_DY and PLANE_PROJ_SCALE) and x − mean formed as
//     (x − K) − meanOffset (planes PLANE_SHIFT and PLANE_MEAN_OFFSET),
//     which is exact for data clustered around its mean.
//   running statistics (BATCH_STATS = false, PyTorch's eval-mode backward):
//     grad_input = dy · invstd[c] · weight[c], which needs no reduction at all.
// invstd is plane PLANE_INVSTD, written by the forward (or by backward_prepare); weight is read at backward
// time, and is 1 when the module is not affine (FLAG_AFFINE clear).
//
// Per channel this is dx = dy·A − (x − K)·B + D with A = invstd·weight, B = projScale·A and
// D = (meanOffset·projScale − meanDy)·A, so each invocation loads its channel's constants once.
//
// Iteration is normalize.wgsl's: the tensor as rows × cols (channels-first: row = n·C + c, cols =
// spatial; channels-last: row = n·spatial + s, cols = C; /4 for vec4); invocation i owns column
// i % cols of rows lane, lane + lanes, ... so neighbours touch neighbouring addresses, and its
// channel is fixed (channels-last always; channels-first when lanes is a multiple of C).
// On fallback adapters (CONTIGUOUS) an invocation owns a long contiguous run instead, as in
// normalize.wgsl: channels-first `runLength` elements of one row; channels-last 4 vec4 columns (16
// channels) of `runLength` consecutive rows, their coefficients held in registers.

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
  flags: u32,           // FLAG_AFFINE (common/prelude.wgsl)
  blocksPerRow: u32,    // CONTIGUOUS: channels-first runs per row; channels-last column groups per row
  runLength: u32,       // CONTIGUOUS: channels-first elements per run; channels-last rows per invocation
  _pad0: u32,
  _pad1: u32,
  _pad2: u32,
}

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

// true: training formula (batch statistics); false: running statistics.
override BATCH_STATS: bool = true;
// Access pattern, as in normalize.wgsl: true on fallback adapters (long contiguous runs).
override CONTIGUOUS: bool = false;

// vec4(K, A, B, D) of channel c (see the header).
fn coef(c: u32) -> vec4f {
  var w = 1.0;
  if ((params.flags & FLAG_AFFINE) != 0u) { w = weight[params.weightBase + c]; }
  let a = plane1(PLANE_INVSTD, c) * w;
  if (!BATCH_STATS) { return vec4f(0.0, a, 0.0, 0.0); }
  let proj = plane1(PLANE_PROJ_SCALE, c);
  return vec4f(plane1(PLANE_SHIFT, c), a, proj * a,
               (plane1(PLANE_MEAN_OFFSET, c) * proj - plane1(PLANE_MEAN_DY, c)) * a);
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
    let start = rowStart + (i - row * params.blocksPerRow) * params.runLength;
    let end = min(start + params.runLength, rowStart + params.cols);
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
    let start = rowStart + (i - row * params.blocksPerRow) * params.runLength;
    let end = min(start + params.runLength, rowStart + params.cols);
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

// Coefficients (K, A, B, D) of channels 4·c4 .. 4·c4 + 3, one vector each.
fn coef4(c4: u32) -> array<vec4f, 4> {
  var k: vec4f;
  var a: vec4f;
  var b: vec4f;
  var d: vec4f;
  for (var l = 0u; l < 4u; l++) {
    let cl = coef(c4 * 4u + l);
    k[l] = cl.x;
    a[l] = cl.y;
    b[l] = cl.z;
    d[l] = cl.w;
  }
  return array<vec4f, 4>(k, a, b, d);
}

fn dx4(j: u32, o: u32, c: array<vec4f, 4>) {
  if (BATCH_STATS) {
    dx[params.dxBase + o + j] = dy[params.dyBase + o + j] * c[1] - (x[params.xBase + o + j] - c[0]) * c[2] + c[3];
  } else {
    dx[params.dxBase + o + j] = dy[params.dyBase + o + j] * c[1];
  }
}

// CONTIGUOUS channels-last: invocation i owns column group i % blocksPerRow (4 vec4 columns when
// cols % 4 == 0, else 1) of rows [block·runLength, (block + 1)·runLength), as in normalize.wgsl.
fn elementwise_cl4_rows(i: u32) {
  let rowBlock = i / params.blocksPerRow;
  let firstRow = rowBlock * params.runLength;
  if (firstRow >= params.rows) { return; }
  let cols = params.cols;
  // The host groups cols / blocksPerRow columns per invocation: 4 (written out below) or 1.
  let groupCols = cols / params.blocksPerRow;
  let quads = groupCols == 4u;
  let col = (i - rowBlock * params.blocksPerRow) * groupCols;
  let o = firstRow * cols + col;
  let end = (min(firstRow + params.runLength, params.rows) - firstRow) * cols;
  let c0 = coef4(col);
  if (!quads) {
    for (var j = 0u; j < end; j += cols) { dx4(j, o, c0); }
    return;
  }
  let c1 = coef4(col + 1u);
  let c2 = coef4(col + 2u);
  let c3 = coef4(col + 3u);
  for (var j = 0u; j < end; j += cols) {
    dx4(j, o, c0);
    dx4(j, o + 1u, c1);
    dx4(j, o + 2u, c2);
    dx4(j, o + 3u, c3);
  }
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn elementwise_cl4(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wid: vec3u,
                   @builtin(num_workgroups) nwg: vec3u) {
  let i = invocation(wid, nwg, lid);
  if (CONTIGUOUS) {
    elementwise_cl4_rows(i);
    return;
  }
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
