// Batch-norm stage 3 of 3: the fused normalize + affine elementwise pass,
//   y = (x - K[c]) * scale[c] + shiftedBias[c]
// one subtract and one FMA per element, then the optional fused epilogue act(y + residual)
// (shaders/common/epilogue.wgsl, selected by the ACTIVATION and RESIDUAL overrides). In training the per-channel constants come from
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
//
// Half-precision tensors (float16 / bfloat16, HALF_FORMAT; common/half.wgsl) are walked by u32
// word, two values each, so no two invocations ever write one word: normalize_cf2h (even
// spatial: both values of a word are one channel's) and normalize_cl2h (even C: channels 2k and
// 2k + 1) are the vec4 kernels' walks with cols counted in words; normalize_anyh takes any shape,
// finding each value's channel by division. Values widen exactly on load, the arithmetic is this
// file's float32, and each result is rounded once (to nearest, ties to even) on store. The `*Base`
// uniforms then count words.
//
// Fallback adapters (CONTIGUOUS) run each invocation as a CPU loop, where what costs beyond the
// copy itself is per-invocation setup (index maths, constant loads) and per-element branches; so
// there an invocation owns one long contiguous run (bench/README.md, "Sweep", has the numbers):
//   channels-first: `runLength` vec4s of one row (a whole (n, c) plane unless the tensor has too
//     few planes to keep the adapter's threads busy), constants loaded once;
//   channels-last: 4 adjacent vec4 columns (16 channels, 12 constant vectors held in registers)
//     of `runLength` consecutive rows, one 64-byte run per row (one column when cols % 4 != 0).

struct NormalizeParams {
  rows: u32,
  cols: u32,
  lanes: u32,        // rows processed in parallel; invocations = lanes * cols
  channels: u32,
  laneChannelStep: u32, // channels-first: lanes % C (0: the channel never changes)
  xBase: u32,        // element offsets inside the bindings, in bound elements
  yBase: u32,
  planeStride: u32,  // ceil(C / 4): vec4s per plane of channelStats
  flags: u32,        // FLAG_FROM_RUNNING | FLAG_AFFINE (common/prelude.wgsl)
  eps: f32,
  weightBase: u32,   // element offsets of the per-channel tensors inside their bindings
  biasBase: u32,
  runningMeanBase: u32,
  runningVarBase: u32,
  blocksPerRow: u32, // CONTIGUOUS: channels-first runs per row; channels-last column groups per row
  runLength: u32,    // CONTIGUOUS: channels-first vec4s (or floats) per run; channels-last rows per invocation
  residualBase: u32, // RESIDUAL: element offset of the residual inside its binding
  activationMin: f32,   // ACTIVATION_CLAMP bounds
  activationMax: f32,
  activationSlope: f32, // ACTIVATION_LEAKY_RELU slope
  halfSpatial: u32,  // normalize_anyh: values between channel changes (channels-first spatial, channels-last 1)
  halfSize: u32,     // normalize_anyh: values in the tensor (the last word's high half is padding when odd)
  _pad0: u32,
  _pad1: u32,
}

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
// The fused epilogue's skip connection (RESIDUAL), same layout as x.
@group(0) @binding(8) var<storage, read> residual: array<vec4f>;
@group(0) @binding(8) var<storage, read> residualScalar: array<f32>;
// float16 / bfloat16 x, y and residual (the *h entries, HALF_FORMAT): u32 words of two values.
@group(0) @binding(1) var<storage, read> xHalf: array<u32>;
@group(0) @binding(2) var<storage, read_write> yHalf: array<u32>;
@group(0) @binding(8) var<storage, read> residualHalf: array<u32>;

// Access pattern. false (GPUs): the coalesced row-lane walk described above. true (fallback
// adapters, which run each invocation as a CPU loop): the long contiguous runs described above,
// the pattern CPU caches and prefetchers want.
override CONTIGUOUS: bool = false;

// vec4(K, scale, shiftedBias, invstd) of channel c from the running statistics.
// NaN or Inf in the running statistics or parameters reaches y as in torch: invstd by its bits
// (common/non-finite.wgsl, branch-free since every invocation runs this), the rest by plain
// arithmetic, whose NaN and Inf flow like the element loop's.
fn from_running(c: u32) -> vec4f {
  let invstd = invstd_of_sum(runningVar[params.runningVarBase + c] + params.eps);
  var w = 1.0;
  var b = 0.0;
  if ((params.flags & FLAG_AFFINE) != 0u) {
    w = weight[params.weightBase + c];
    b = bias[params.biasBase + c];
  }
  return vec4f(runningMean[params.runningMeanBase + c], w * invstd, b, invstd);
}

// Channel c's constants vec4(K, scale, shiftedBias, PReLU slope): channelStats' packed region in
// training, the running statistics in evaluation; the slope rides in the fourth lane so every loop
// that reloads a channel's constants reloads it too.
fn packed(c: u32) -> vec4f {
  var k: vec4f;
  if ((params.flags & FLAG_FROM_RUNNING) != 0u) { k = from_running(c); } else { k = read_packed(c); }
  return vec4f(k.xyz, prelu_slope(c));
}

// Evaluation only: invocation c < C records its channel's constants in finalize.wgsl's layout
// (with K = mean and meanOffset = 0), for a later backward.
fn record_running(i: u32) {
  if ((params.flags & FLAG_FROM_RUNNING) == 0u || i >= params.channels) { return; }
  let k = from_running(i);
  write_channel_constants(i, k.x, k.y, k.z, k.x, k.w, 0.0);
}

// Constants of channels 4·c4 .. 4·c4+3 as (K, scale, shiftedBias, PReLU slope) vectors.
fn packed4(c4: u32) -> array<vec4f, 4> {
  if ((params.flags & FLAG_FROM_RUNNING) == 0u) {
    return array<vec4f, 4>(plane4(PLANE_SHIFT, c4), plane4(PLANE_SCALE, c4), plane4(PLANE_SHIFTED_BIAS, c4), prelu_slope4(c4));
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
  return array<vec4f, 4>(k, scale, shift, prelu_slope4(c4));
}

// The fused epilogue (shaders/common/epilogue.wgsl) on normalized value t of flat element j:
// act(t + residual[j]), w its channel's PReLU slope (per lane). With the default overrides it is t.
fn epilogue4(t: vec4f, j: u32, w: vec4f) -> vec4f {
  if (ACTIVATION == ACTIVATION_NONE && !RESIDUAL) { return t; }
  var v = t;
  if (RESIDUAL) { v += residual[params.residualBase + j]; }
  return activate4(v, vec3f(params.activationMin, params.activationMax, params.activationSlope), w);
}

fn epilogue1(t: f32, j: u32, w: f32) -> f32 {
  if (ACTIVATION == ACTIVATION_NONE && !RESIDUAL) { return t; }
  var v = t;
  if (RESIDUAL) { v += residualScalar[params.residualBase + j]; }
  return activate1(v, vec3f(params.activationMin, params.activationMax, params.activationSlope), w);
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
    let start = rowStart + (i - row * params.blocksPerRow) * params.runLength;
    let end = min(start + params.runLength, rowStart + params.cols);
    for (var j = start; j < end; j++) {
      y[yb + j] = epilogue4(fma(x[xb + j] - vec4f(k.x), vec4f(k.y), vec4f(k.z)), j, vec4f(k.w));
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
      y[yb + j] = epilogue4(fma(x[xb + j] - vec4f(k.x), vec4f(k.y), vec4f(k.z)), j, vec4f(k.w));
    }
    return;
  }
  for (var j = i; j < total; j += step) {
    y[yb + j] = epilogue4(fma(x[xb + j] - vec4f(k.x), vec4f(k.y), vec4f(k.z)), j, vec4f(k.w));
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
    let start = rowStart + (i - row * params.blocksPerRow) * params.runLength;
    let end = min(start + params.runLength, rowStart + params.cols);
    for (var j = start; j < end; j++) {
      yScalar[yb + j] = epilogue1(fma(xScalar[xb + j] - k.x, k.y, k.z), j, k.w);
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
      yScalar[yb + j] = epilogue1(fma(xScalar[xb + j] - k.x, k.y, k.z), j, k.w);
    }
    return;
  }
  for (var j = i; j < total; j += step) {
    yScalar[yb + j] = epilogue1(fma(xScalar[xb + j] - k.x, k.y, k.z), j, k.w);
    c += params.laneChannelStep;
    if (c >= params.channels) { c -= params.channels; }
    k = packed(c);
  }
}

// CONTIGUOUS channels-last: invocation i owns column group i % blocksPerRow (4 vec4 columns when
// cols % 4 == 0, else 1) of rows [block·runLength, (block + 1)·runLength). The four columns are
// written out so their constants stay in registers and no loop runs over them.
fn normalize_cl4_rows(i: u32) {
  let rowBlock = i / params.blocksPerRow;
  let firstRow = rowBlock * params.runLength;
  if (firstRow >= params.rows) { return; }
  let cols = params.cols;
  // The host groups cols / blocksPerRow columns per invocation: 4 (written out below) or 1.
  let groupCols = cols / params.blocksPerRow;
  let quads = groupCols == CONTIGUOUS_COLUMN_GROUP;
  let col = (i - rowBlock * params.blocksPerRow) * groupCols;
  let xb = params.xBase + firstRow * cols + col;
  let yb = params.yBase + firstRow * cols + col;
  let end = (min(firstRow + params.runLength, params.rows) - firstRow) * cols;
  let c0 = packed4(col);
  // Flat index of this run's first element, for the epilogue's residual.
  let flat = firstRow * cols + col;
  if (!quads) {
    for (var j = 0u; j < end; j += cols) {
      y[yb + j] = epilogue4(fma(x[xb + j] - c0[0], c0[1], c0[2]), flat + j, c0[3]);
    }
    return;
  }
  let c1 = packed4(col + 1u);
  let c2 = packed4(col + 2u);
  let c3 = packed4(col + 3u);
  for (var j = 0u; j < end; j += cols) {
    y[yb + j] = epilogue4(fma(x[xb + j] - c0[0], c0[1], c0[2]), flat + j, c0[3]);
    y[yb + j + 1u] = epilogue4(fma(x[xb + j + 1u] - c1[0], c1[1], c1[2]), flat + j + 1u, c1[3]);
    y[yb + j + 2u] = epilogue4(fma(x[xb + j + 2u] - c2[0], c2[1], c2[2]), flat + j + 2u, c2[3]);
    y[yb + j + 3u] = epilogue4(fma(x[xb + j + 3u] - c3[0], c3[1], c3[2]), flat + j + 3u, c3[3]);
  }
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn normalize_cl4(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wid: vec3u,
                 @builtin(num_workgroups) nwg: vec3u) {
  let i = invocation(wid, nwg, lid);
  record_running(i);
  if (CONTIGUOUS) {
    normalize_cl4_rows(i);
    return;
  }
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
    y[yb + j] = epilogue4(fma(x[xb + j] - k, scale, shift), j, constants[3]);
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
    yScalar[yb + j] = epilogue1(fma(xScalar[xb + j] - k, scale, shift), j, constants.w);
  }
}

// Word w (counted from each tensor's first word) of a half-precision y from the same word of x:
// its two values normalized with constants k0 and k1 (packed(): K, scale, shiftedBias, PReLU
// slope), the epilogue applied, rounded to the format.
fn normalize_word(w: u32, k0: vec4f, k1: vec4f) -> u32 {
  let v = unpack_half2(xHalf[params.xBase + w]);
  var t = vec2f(fma(v.x - k0.x, k0.y, k0.z), fma(v.y - k1.x, k1.y, k1.z));
  if (ACTIVATION != ACTIVATION_NONE || RESIDUAL) {
    if (RESIDUAL) { t += unpack_half2(residualHalf[params.residualBase + w]); }
    let p = vec3f(params.activationMin, params.activationMax, params.activationSlope);
    t = activate4(vec4f(t, 0.0, 0.0), p, vec4f(k0.w, k1.w, 0.0, 0.0)).xy;
  }
  return pack_half2(t);
}

// Half precision, channels-first with even spatial: normalize_cf4's walks over words (cols = spatial / 2).
@compute @workgroup_size(WORKGROUP_SIZE)
fn normalize_cf2h(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wid: vec3u,
                  @builtin(num_workgroups) nwg: vec3u) {
  let i = invocation(wid, nwg, lid);
  record_running(i);
  if (CONTIGUOUS) {
    let row = i / params.blocksPerRow;
    if (row >= params.rows) { return; }
    let k = packed(row % params.channels);
    let rowStart = row * params.cols;
    let start = rowStart + (i - row * params.blocksPerRow) * params.runLength;
    let end = min(start + params.runLength, rowStart + params.cols);
    for (var j = start; j < end; j++) {
      yHalf[params.yBase + j] = normalize_word(j, k, k);
    }
    return;
  }
  if (i >= params.lanes * params.cols) { return; }
  var c = (i / params.cols) % params.channels;
  var k = packed(c);
  let step = params.lanes * params.cols;
  let total = params.rows * params.cols;
  if (params.laneChannelStep == 0u) {
    for (var j = i; j < total; j += step) {
      yHalf[params.yBase + j] = normalize_word(j, k, k);
    }
    return;
  }
  for (var j = i; j < total; j += step) {
    yHalf[params.yBase + j] = normalize_word(j, k, k);
    c += params.laneChannelStep;
    if (c >= params.channels) { c -= params.channels; }
    k = packed(c);
  }
}

// CONTIGUOUS half-precision channels-last: normalize_cl4_rows over words, invocation i owning 4
// word columns (8 channels, their constants in registers) or 1 of `runLength` consecutive rows.
fn normalize_cl2h_rows(i: u32) {
  let rowBlock = i / params.blocksPerRow;
  let firstRow = rowBlock * params.runLength;
  if (firstRow >= params.rows) { return; }
  let cols = params.cols;
  let groupCols = cols / params.blocksPerRow;
  let col = (i - rowBlock * params.blocksPerRow) * groupCols;
  let o = firstRow * cols + col;
  let end = (min(firstRow + params.runLength, params.rows) - firstRow) * cols;
  let yb = params.yBase + o;
  let a0 = packed(2u * col);
  let b0 = packed(2u * col + 1u);
  if (groupCols != 4u) {
    for (var j = 0u; j < end; j += cols) { yHalf[yb + j] = normalize_word(o + j, a0, b0); }
    return;
  }
  let a1 = packed(2u * col + 2u);
  let b1 = packed(2u * col + 3u);
  let a2 = packed(2u * col + 4u);
  let b2 = packed(2u * col + 5u);
  let a3 = packed(2u * col + 6u);
  let b3 = packed(2u * col + 7u);
  for (var j = 0u; j < end; j += cols) {
    yHalf[yb + j] = normalize_word(o + j, a0, b0);
    yHalf[yb + j + 1u] = normalize_word(o + j + 1u, a1, b1);
    yHalf[yb + j + 2u] = normalize_word(o + j + 2u, a2, b2);
    yHalf[yb + j + 3u] = normalize_word(o + j + 3u, a3, b3);
  }
}

// Half precision, channels-last with even C: word column col holds channels 2·col and 2·col + 1.
@compute @workgroup_size(WORKGROUP_SIZE)
fn normalize_cl2h(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wid: vec3u,
                  @builtin(num_workgroups) nwg: vec3u) {
  let i = invocation(wid, nwg, lid);
  record_running(i);
  if (CONTIGUOUS) {
    normalize_cl2h_rows(i);
    return;
  }
  if (i >= params.lanes * params.cols) { return; }
  let col = i % params.cols;
  let k0 = packed(2u * col);
  let k1 = packed(2u * col + 1u);
  let step = params.lanes * params.cols;
  let total = params.rows * params.cols;
  for (var j = i; j < total; j += step) {
    yHalf[params.yBase + j] = normalize_word(j, k0, k1);
  }
}

// Half precision, any shape (odd spatial or odd C): invocation i owns words i, i + lanes, ...;
// each value's channel by division. An odd count's last word keeps its padding half.
@compute @workgroup_size(WORKGROUP_SIZE)
fn normalize_anyh(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wid: vec3u,
                  @builtin(num_workgroups) nwg: vec3u) {
  let i = invocation(wid, nwg, lid);
  record_running(i);
  let words = (params.halfSize + 1u) / 2u;
  for (var w = i; w < words; w += params.lanes) {
    let j = 2u * w;
    let k0 = packed((j / params.halfSpatial) % params.channels);
    if (j + 1u < params.halfSize) {
      yHalf[params.yBase + w] = normalize_word(w, k0, packed(((j + 1u) / params.halfSpatial) % params.channels));
    } else {
      yHalf[params.yBase + w] = keep_padding(normalize_word(w, k0, k0), yHalf[params.yBase + w]);
    }
  }
}
