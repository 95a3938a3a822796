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
// Fused epilogue (ACTIVATION / RESIDUAL overrides, shaders/common/epilogue.wgsl): dy is first
// taken through the activation's derivative (mask from the saved output y, or its derivative at
// the recomputed pre-activation), which is also the residual's gradient, stored in the same pass.
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
  outputBase: u32,      // epilogue: offsets of the forward's output, residual and gradResidual
  residualBase: u32,
  gradResidualBase: u32,
  activationMin: f32,   // ACTIVATION_CLAMP bounds
  activationMax: f32,
  activationSlope: f32, // ACTIVATION_LEAKY_RELU slope
  _pad0: u32,
  halfSpatial: u32,     // elementwise_anyh: values between channel changes (channels-first spatial, channels-last 1)
  halfSize: u32,        // elementwise_anyh: values in the tensor (the last word's high half is padding when odd)
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
// Fused epilogue (shaders/common/epilogue.wgsl): the forward's output (ReLU-family masks), its
// residual (the recomputed pre-activation) and the residual's gradient, written here.
@group(0) @binding(6) var<storage, read> output: array<vec4f>;
@group(0) @binding(6) var<storage, read> outputScalar: array<f32>;
@group(0) @binding(7) var<storage, read> residual: array<vec4f>;
@group(0) @binding(7) var<storage, read> residualScalar: array<f32>;
@group(0) @binding(8) var<storage, read_write> gradResidual: array<vec4f>;
@group(0) @binding(8) var<storage, read_write> gradResidualScalar: array<f32>;
// float16 / bfloat16 tensors (the *h entries, HALF_FORMAT; common/half.wgsl): u32 words of two
// values, walked a word at a time as in normalize.wgsl, so no two invocations write one word; the
// `*Base` uniforms then count words.
@group(0) @binding(1) var<storage, read> xHalf: array<u32>;
@group(0) @binding(2) var<storage, read> dyHalf: array<u32>;
@group(0) @binding(3) var<storage, read_write> dxHalf: array<u32>;
@group(0) @binding(6) var<storage, read> outputHalf: array<u32>;
@group(0) @binding(7) var<storage, read> residualHalf: array<u32>;
@group(0) @binding(8) var<storage, read_write> gradResidualHalf: array<u32>;

// true: training formula (batch statistics); false: running statistics.
override BATCH_STATS: bool = true;
// Access pattern, as in normalize.wgsl: true on fallback adapters (long contiguous runs).
override CONTIGUOUS: bool = false;
// false: only the epilogue's gradResidual is wanted, and dx is not written.
override GRAD_INPUT: bool = true;
// true: store dL/dt as the residual's gradient (the forward added a residual). RESIDUAL (from
// the prelude) here means the residual enters the recomputed pre-activation.
override GRAD_RESIDUAL: bool = false;

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

// Pre-activation epilogues only (activation_uses_pre_activation): vec4(K, scale, shift, PReLU
// slope) of channel c, the forward's t = (x − K)·scale + shift (planes PLANE_SHIFT, PLANE_SCALE,
// PLANE_SHIFTED_BIAS); zeros otherwise, so other pipelines load nothing.
fn pre_activation_coef(c: u32) -> vec4f {
  if (!activation_uses_pre_activation()) { return vec4f(0.0); }
  return vec4f(plane1(PLANE_SHIFT, c), plane1(PLANE_SCALE, c), plane1(PLANE_SHIFTED_BIAS, c), prelu_slope(c));
}

// dL/dt at flat element j from dL/dy = g through the fused epilogue, and dL/dresidual = dL/dt
// stored when there is a residual. e = pre_activation_coef of j's channel(s), per lane.
fn epilogue_grad4(g: vec4f, j: u32, ek: vec4f, es: vec4f, eh: vec4f, ew: vec4f) -> vec4f {
  let p = vec3f(params.activationMin, params.activationMax, params.activationSlope);
  var d = g;
  if (activation_masks_from_output()) {
    d = activation_grad_from_output4(g, output[params.outputBase + j], p);
  } else if (activation_uses_pre_activation()) {
    var t = fma(x[params.xBase + j] - ek, es, eh);
    if (RESIDUAL) { t += residual[params.residualBase + j]; }
    d = activation_grad4(g, t, p, ew);
  }
  if (GRAD_RESIDUAL) { gradResidual[params.gradResidualBase + j] = d; }
  return d;
}

fn epilogue_grad1(g: f32, j: u32, e: vec4f) -> f32 {
  let p = vec3f(params.activationMin, params.activationMax, params.activationSlope);
  var d = g;
  if (activation_masks_from_output()) {
    d = activation_grad_from_output1(g, outputScalar[params.outputBase + j], p);
  } else if (activation_uses_pre_activation()) {
    var t = fma(xScalar[params.xBase + j] - e.x, e.y, e.z);
    if (RESIDUAL) { t += residualScalar[params.residualBase + j]; }
    d = activation_grad1(g, t, p, e.w);
  }
  if (GRAD_RESIDUAL) { gradResidualScalar[params.gradResidualBase + j] = d; }
  return d;
}

fn store_dx4(i: u32, v: vec4f) {
  if (GRAD_INPUT) { dx[i] = v; }
}

fn store_dx1(i: u32, v: f32) {
  if (GRAD_INPUT) { dxScalar[i] = v; }
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn elementwise_cf4(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wid: vec3u,
                   @builtin(num_workgroups) nwg: vec3u) {
  let i = invocation(wid, nwg, lid);
  if (CONTIGUOUS) {
    let row = i / params.blocksPerRow;
    if (row >= params.rows) { return; }
    let k = coef(row % params.channels);
    let e = pre_activation_coef(row % params.channels);
    let xb = params.xBase;
    let gb = params.dyBase;
    let ob = params.dxBase;
    let rowStart = row * params.cols;
    let start = rowStart + (i - row * params.blocksPerRow) * params.runLength;
    let end = min(start + params.runLength, rowStart + params.cols);
    for (var j = start; j < end; j++) {
      let g = epilogue_grad4(dy[gb + j], j, vec4f(e.x), vec4f(e.y), vec4f(e.z), vec4f(e.w));
      if (BATCH_STATS) {
        store_dx4(ob + j, g * k.y - (x[xb + j] - vec4f(k.x)) * k.z + vec4f(k.w));
      } else {
        store_dx4(ob + j, g * k.y);
      }
    }
    return;
  }
  if (i >= params.lanes * params.cols) { return; }
  var c = (i / params.cols) % params.channels;
  var k = coef(c);
  var e = pre_activation_coef(c);
  let step = params.lanes * params.cols;
  let total = params.rows * params.cols;
  let xb = params.xBase;
  let gb = params.dyBase;
  let ob = params.dxBase;
  // Two loops rather than a branch inside one: software adapters pay for a branch per element.
  if (params.laneChannelStep == 0u) {
    for (var j = i; j < total; j += step) {
      let g = epilogue_grad4(dy[gb + j], j, vec4f(e.x), vec4f(e.y), vec4f(e.z), vec4f(e.w));
      if (BATCH_STATS) {
        store_dx4(ob + j, g * k.y - (x[xb + j] - vec4f(k.x)) * k.z + vec4f(k.w));
      } else {
        store_dx4(ob + j, g * k.y);
      }
    }
    return;
  }
  for (var j = i; j < total; j += step) {
    let g = epilogue_grad4(dy[gb + j], j, vec4f(e.x), vec4f(e.y), vec4f(e.z), vec4f(e.w));
    if (BATCH_STATS) {
      store_dx4(ob + j, g * k.y - (x[xb + j] - vec4f(k.x)) * k.z + vec4f(k.w));
    } else {
      store_dx4(ob + j, g * k.y);
    }
    c += params.laneChannelStep;
    if (c >= params.channels) { c -= params.channels; }
    k = coef(c);
    e = pre_activation_coef(c);
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
    let e = pre_activation_coef(row % params.channels);
    let xb = params.xBase;
    let gb = params.dyBase;
    let ob = params.dxBase;
    let rowStart = row * params.cols;
    let start = rowStart + (i - row * params.blocksPerRow) * params.runLength;
    let end = min(start + params.runLength, rowStart + params.cols);
    for (var j = start; j < end; j++) {
      let g = epilogue_grad1(dyScalar[gb + j], j, e);
      if (BATCH_STATS) {
        store_dx1(ob + j, g * k.y - (xScalar[xb + j] - k.x) * k.z + k.w);
      } else {
        store_dx1(ob + j, g * k.y);
      }
    }
    return;
  }
  if (i >= params.lanes * params.cols) { return; }
  var c = (i / params.cols) % params.channels;
  var k = coef(c);
  var e = pre_activation_coef(c);
  let step = params.lanes * params.cols;
  let total = params.rows * params.cols;
  let xb = params.xBase;
  let gb = params.dyBase;
  let ob = params.dxBase;
  if (params.laneChannelStep == 0u) {
    for (var j = i; j < total; j += step) {
      let g = epilogue_grad1(dyScalar[gb + j], j, e);
      if (BATCH_STATS) {
        store_dx1(ob + j, g * k.y - (xScalar[xb + j] - k.x) * k.z + k.w);
      } else {
        store_dx1(ob + j, g * k.y);
      }
    }
    return;
  }
  for (var j = i; j < total; j += step) {
    let g = epilogue_grad1(dyScalar[gb + j], j, e);
    if (BATCH_STATS) {
      store_dx1(ob + j, g * k.y - (xScalar[xb + j] - k.x) * k.z + k.w);
    } else {
      store_dx1(ob + j, g * k.y);
    }
    c += params.laneChannelStep;
    if (c >= params.channels) { c -= params.channels; }
    k = coef(c);
    e = pre_activation_coef(c);
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

// pre_activation_coef of channels 4·c4 .. 4·c4 + 3 as (K, scale, shift, PReLU slope) vectors.
fn pre_activation_coef4(c4: u32) -> array<vec4f, 4> {
  var k: vec4f;
  var s: vec4f;
  var h: vec4f;
  var w: vec4f;
  for (var l = 0u; l < 4u; l++) {
    let el = pre_activation_coef(c4 * 4u + l);
    k[l] = el[0];
    s[l] = el[1];
    h[l] = el[2];
    w[l] = el[3];
  }
  return array<vec4f, 4>(k, s, h, w);
}

fn dx4(j: u32, o: u32, c: array<vec4f, 4>, e: array<vec4f, 4>) {
  let g = epilogue_grad4(dy[params.dyBase + o + j], o + j, e[0], e[1], e[2], e[3]);
  if (BATCH_STATS) {
    store_dx4(params.dxBase + o + j, g * c[1] - (x[params.xBase + o + j] - c[0]) * c[2] + c[3]);
  } else {
    store_dx4(params.dxBase + o + j, g * c[1]);
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
  let quads = groupCols == CONTIGUOUS_COLUMN_GROUP;
  let col = (i - rowBlock * params.blocksPerRow) * groupCols;
  let o = firstRow * cols + col;
  let end = (min(firstRow + params.runLength, params.rows) - firstRow) * cols;
  let c0 = coef4(col);
  let e0 = pre_activation_coef4(col);
  if (!quads) {
    for (var j = 0u; j < end; j += cols) { dx4(j, o, c0, e0); }
    return;
  }
  let c1 = coef4(col + 1u);
  let c2 = coef4(col + 2u);
  let c3 = coef4(col + 3u);
  let e1 = pre_activation_coef4(col + 1u);
  let e2 = pre_activation_coef4(col + 2u);
  let e3 = pre_activation_coef4(col + 3u);
  for (var j = 0u; j < end; j += cols) {
    dx4(j, o, c0, e0);
    dx4(j, o + 1u, c1, e1);
    dx4(j, o + 2u, c2, e2);
    dx4(j, o + 3u, c3, e3);
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
  var ek: vec4f;
  var es: vec4f;
  var eh: vec4f;
  var ew: vec4f;
  for (var l = 0u; l < 4u; l++) {
    let cl = coef(col * 4u + l);
    k[l] = cl.x;
    a[l] = cl.y;
    b[l] = cl.z;
    d[l] = cl.w;
    let el = pre_activation_coef(col * 4u + l);
    ek[l] = el.x;
    es[l] = el.y;
    eh[l] = el.z;
    ew[l] = el.w;
  }
  let step = params.lanes * params.cols;
  let total = params.rows * params.cols;
  let xb = params.xBase;
  let gb = params.dyBase;
  let ob = params.dxBase;
  for (var j = i; j < total; j += step) {
    let g = epilogue_grad4(dy[gb + j], j, ek, es, eh, ew);
    if (BATCH_STATS) {
      store_dx4(ob + j, g * a - (x[xb + j] - k) * b + d);
    } else {
      store_dx4(ob + j, g * a);
    }
  }
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn elementwise_cl1(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wid: vec3u,
                   @builtin(num_workgroups) nwg: vec3u) {
  let i = invocation(wid, nwg, lid);
  if (i >= params.lanes * params.cols) { return; }
  let k = coef(i % params.cols);
  let e = pre_activation_coef(i % params.cols);
  let step = params.lanes * params.cols;
  let total = params.rows * params.cols;
  let xb = params.xBase;
  let gb = params.dyBase;
  let ob = params.dxBase;
  for (var j = i; j < total; j += step) {
    let g = epilogue_grad1(dyScalar[gb + j], j, e);
    if (BATCH_STATS) {
      store_dx1(ob + j, g * k.y - (xScalar[xb + j] - k.x) * k.z + k.w);
    } else {
      store_dx1(ob + j, g * k.y);
    }
  }
}

// Word w (counted from each tensor's first word) of the half-precision dx and gradResidual from
// the same word of the inputs: c0, c1 are coef() and e0, e1 pre_activation_coef() of its two
// values; `last` (an odd count's last word) keeps the padding halves as they were.
fn backward_word(w: u32, c0: vec4f, c1: vec4f, e0: vec4f, e1: vec4f, last: bool) {
  let p = vec3f(params.activationMin, params.activationMax, params.activationSlope);
  let g = unpack_half2(dyHalf[params.dyBase + w]);
  var d = g;
  if (activation_masks_from_output()) {
    let y = unpack_half2(outputHalf[params.outputBase + w]);
    d = activation_grad_from_output4(vec4f(g, 0.0, 0.0), vec4f(y, 0.0, 0.0), p).xy;
  } else if (activation_uses_pre_activation()) {
    let xv = unpack_half2(xHalf[params.xBase + w]);
    var t = vec2f(fma(xv.x - e0.x, e0.y, e0.z), fma(xv.y - e1.x, e1.y, e1.z));
    if (RESIDUAL) { t += unpack_half2(residualHalf[params.residualBase + w]); }
    d = activation_grad4(vec4f(g, 0.0, 0.0), vec4f(t, 0.0, 0.0), p, vec4f(e0.w, e1.w, 0.0, 0.0)).xy;
  }
  if (GRAD_RESIDUAL) {
    var word = pack_half2(d);
    if (last) { word = keep_padding(word, gradResidualHalf[params.gradResidualBase + w]); }
    gradResidualHalf[params.gradResidualBase + w] = word;
  }
  if (GRAD_INPUT) {
    var v = d * vec2f(c0.y, c1.y);
    if (BATCH_STATS) {
      let xv = unpack_half2(xHalf[params.xBase + w]);
      v = v - (xv - vec2f(c0.x, c1.x)) * vec2f(c0.z, c1.z) + vec2f(c0.w, c1.w);
    }
    var word = pack_half2(v);
    if (last) { word = keep_padding(word, dxHalf[params.dxBase + w]); }
    dxHalf[params.dxBase + w] = word;
  }
}

// Half precision, channels-first with even spatial: elementwise_cf4's walks over words.
@compute @workgroup_size(WORKGROUP_SIZE)
fn elementwise_cf2h(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wid: vec3u,
                    @builtin(num_workgroups) nwg: vec3u) {
  let i = invocation(wid, nwg, lid);
  if (CONTIGUOUS) {
    let row = i / params.blocksPerRow;
    if (row >= params.rows) { return; }
    let k = coef(row % params.channels);
    let e = pre_activation_coef(row % params.channels);
    let rowStart = row * params.cols;
    let start = rowStart + (i - row * params.blocksPerRow) * params.runLength;
    let end = min(start + params.runLength, rowStart + params.cols);
    for (var j = start; j < end; j++) { backward_word(j, k, k, e, e, false); }
    return;
  }
  if (i >= params.lanes * params.cols) { return; }
  var c = (i / params.cols) % params.channels;
  var k = coef(c);
  var e = pre_activation_coef(c);
  let step = params.lanes * params.cols;
  let total = params.rows * params.cols;
  if (params.laneChannelStep == 0u) {
    for (var j = i; j < total; j += step) { backward_word(j, k, k, e, e, false); }
    return;
  }
  for (var j = i; j < total; j += step) {
    backward_word(j, k, k, e, e, false);
    c += params.laneChannelStep;
    if (c >= params.channels) { c -= params.channels; }
    k = coef(c);
    e = pre_activation_coef(c);
  }
}

// CONTIGUOUS half-precision channels-last: 4 word columns (8 channels) or 1 of `runLength`
// consecutive rows per invocation, as elementwise_cl4_rows.
fn elementwise_cl2h_rows(i: u32) {
  let rowBlock = i / params.blocksPerRow;
  let firstRow = rowBlock * params.runLength;
  if (firstRow >= params.rows) { return; }
  let cols = params.cols;
  let groupCols = cols / params.blocksPerRow;
  let col = (i - rowBlock * params.blocksPerRow) * groupCols;
  let o = firstRow * cols + col;
  let end = (min(firstRow + params.runLength, params.rows) - firstRow) * cols;
  let c = 2u * col;
  let k0 = coef(c);
  let k1 = coef(c + 1u);
  let e0 = pre_activation_coef(c);
  let e1 = pre_activation_coef(c + 1u);
  if (groupCols != 4u) {
    for (var j = 0u; j < end; j += cols) { backward_word(o + j, k0, k1, e0, e1, false); }
    return;
  }
  let k2 = coef(c + 2u);
  let k3 = coef(c + 3u);
  let k4 = coef(c + 4u);
  let k5 = coef(c + 5u);
  let k6 = coef(c + 6u);
  let k7 = coef(c + 7u);
  let e2 = pre_activation_coef(c + 2u);
  let e3 = pre_activation_coef(c + 3u);
  let e4 = pre_activation_coef(c + 4u);
  let e5 = pre_activation_coef(c + 5u);
  let e6 = pre_activation_coef(c + 6u);
  let e7 = pre_activation_coef(c + 7u);
  for (var j = 0u; j < end; j += cols) {
    backward_word(o + j, k0, k1, e0, e1, false);
    backward_word(o + j + 1u, k2, k3, e2, e3, false);
    backward_word(o + j + 2u, k4, k5, e4, e5, false);
    backward_word(o + j + 3u, k6, k7, e6, e7, false);
  }
}

// Half precision, channels-last with even C: word column col holds channels 2·col and 2·col + 1.
@compute @workgroup_size(WORKGROUP_SIZE)
fn elementwise_cl2h(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wid: vec3u,
                    @builtin(num_workgroups) nwg: vec3u) {
  let i = invocation(wid, nwg, lid);
  if (CONTIGUOUS) {
    elementwise_cl2h_rows(i);
    return;
  }
  if (i >= params.lanes * params.cols) { return; }
  let col = i % params.cols;
  let k0 = coef(2u * col);
  let k1 = coef(2u * col + 1u);
  let e0 = pre_activation_coef(2u * col);
  let e1 = pre_activation_coef(2u * col + 1u);
  let step = params.lanes * params.cols;
  let total = params.rows * params.cols;
  for (var j = i; j < total; j += step) { backward_word(j, k0, k1, e0, e1, false); }
}

// Half precision, any shape (odd spatial or odd C): words i, i + lanes, ...; channels by division.
@compute @workgroup_size(WORKGROUP_SIZE)
fn elementwise_anyh(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wid: vec3u,
                    @builtin(num_workgroups) nwg: vec3u) {
  let i = invocation(wid, nwg, lid);
  let words = (params.halfSize + 1u) / 2u;
  for (var w = i; w < words; w += params.lanes) {
    let j = 2u * w;
    let c0 = (j / params.halfSpatial) % params.channels;
    let last = j + 1u >= params.halfSize;
    var c1 = c0;
    if (!last) { c1 = ((j + 1u) / params.halfSpatial) % params.channels; }
    backward_word(w, coef(c0), coef(c1), pre_activation_coef(c0), pre_activation_coef(c1), last);
  }
}
