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
// Exactness without E[x²] − E[x]²: values are summed in short blocks of BLOCK elements, each
// block shifted by its own first value kb: s1 = Σ(x − kb), s2 = Σ(x − kb)². x − kb is exact in
// float32 (Sterbenz) for data clustered around its mean, so a channel with mean 1e4 and std 0.1
// is summed at the precision of its spread, not of its offset; the block's M2 = s2 − s1²/b only
// cancels by 1 + ((mean − kb)/σ)², i.e. not at all unless kb is a far outlier, and then only in
// that one block; short blocks keep float32 rounding of the sums at BLOCK·ε. Blocks are folded
// into the invocation's running (count, mean, M2) with Chan's merge, one division per block. That
// costs three operations per element where per-element Welford needs a division, which matters on
// adapters that emulate the GPU in software, and is as exact. Means are kept relative to the
// channel's first value K, which finalize uses as the reference point of the normalize stage.
//
// Each partial is vec4(bitcast<f32>(count), mean − K, M2, K).
//
// Half-precision x (HALF_FORMAT): stats_cf2h / stats_cl2h (even spatial / even C) are the vec4
// kernels over u32 words of two values (`base` and `cols` in words); the scalar kernels stats_cf1 /
// stats_cl1 read every dtype through the word view (common/half.wgsl, `base` in values). Each value
// is widened exactly to float32 as it is loaded; the sums, their shifts and the partials are
// float32 as for float32 data (torch accumulates half batch norm in float32 too).
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
  rowsPerBlock: u32,// channels-first: rows summed into one shifted block (about BLOCK values)
  stepIndex: u32,   // channels-last: lanes * rowStride
  colsPerLane: u32, // channels-first with CONTIGUOUS: ceil(cols / lanes)
  _pad1: u32,
  _pad2: u32,
  _pad3: u32,
}

@group(0) @binding(0) var<uniform> params: StatsParams;
@group(0) @binding(1) var<storage, read> x: array<vec4f>;
// x as u32 words (common/half.wgsl): float32 bits, or two float16 / bfloat16 values (HALF_FORMAT).
@group(0) @binding(1) var<storage, read> xWords: array<u32>;
@group(0) @binding(2) var<storage, read_write> partials: array<vec4f>;

override BLOCK: u32 = STATS_BLOCK;
// Channels-first column assignment (lane_columns, common/lane-columns.wgsl). false (GPUs):
// invocation p reads columns p, p + lanes, ... (coalesced). true (fallback adapters, where an
// invocation is a CPU loop): it reads the contiguous columns [p·colsPerLane, (p + 1)·colsPerLane).
override CONTIGUOUS: bool = false;

// Running (count, mean − K, M2) per lane: Chan's merge of a block of b values whose shifted sums
// around kb are s1, s2 (kbRel = kb − K).
struct Acc4 {
  n: u32,
  mean: vec4f,
  m2: vec4f,
}

fn merge_block4(acc: ptr<function, Acc4>, b: u32, kbRel: vec4f, s1: vec4f, s2: vec4f) {
  if (b == 0u) { return; }
  let fb = f32(b);
  let d = s1 / fb;
  let blockMean = kbRel + d;
  // drop_negative4, not max(…, 0): a NaN or Inf from the data must reach finalize.
  let blockM2 = drop_negative4(s2 - s1 * d);
  let total = (*acc).n + b;
  let w = fb / f32(total);
  let delta = blockMean - (*acc).mean;
  (*acc).mean += delta * w;
  (*acc).m2 += blockM2 + delta * delta * (f32((*acc).n) * w);
  (*acc).n = total;
}

// Chan merge of the four equal-count lanes of an accumulator into one partial.
fn collapse_lanes(acc: Acc4, k: f32) -> vec4f {
  let mean = dot(acc.mean, vec4f(0.25));
  let dm = acc.mean - vec4f(mean);
  return vec4f(bitcast<f32>(acc.n * 4u), mean, dot(acc.m2, vec4f(1.0)) + f32(acc.n) * dot(dm, dm), k);
}

// Channels-first, vec4 loads (spatial % 4 == 0): invocation p < lanes ≤ cols of channel c reads
// columns p, p + lanes, ... of every row (one row per batch item), in blocks of rowsPerBlock rows.
@compute @workgroup_size(WORKGROUP_SIZE)
fn stats_cf4(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wid: vec3u,
             @builtin(num_workgroups) nwg: vec3u) {
  let c = channel_of(wid, nwg);
  let p = wid.x * WORKGROUP_SIZE + lid;
  if (c >= params.channels || p >= params.lanes) { return; }
  let chan = params.base + c * params.cols;
  let k = x[chan].x;
  var acc = Acc4(0u, vec4f(0.0), vec4f(0.0));
  let span = lane_columns(p);
  if (span.x >= span.y) {
    partials[c * params.lanes + p] = vec4f(0.0, 0.0, 0.0, k);
    return;
  }
  var rowStart = chan;
  for (var blockRow = 0u; blockRow < params.rows; blockRow += params.rowsPerBlock) {
    let kb = x[rowStart + span.x];
    var s1 = vec4f(0.0);
    var s2 = vec4f(0.0);
    var b = 0u;
    let blockEnd = min(blockRow + params.rowsPerBlock, params.rows);
    for (var row = blockRow; row < blockEnd; row++) {
      let rowEnd = rowStart + span.y;
      for (var idx = rowStart + span.x; idx < rowEnd; idx += span.z) {
        let v = x[idx] - kb;
        s1 += v;
        s2 = fma(v, v, s2);
        b += 1u;
      }
      rowStart += params.rowStride;
    }
    merge_block4(&acc, b, kb - vec4f(k), s1, s2);
  }
  partials[c * params.lanes + p] = collapse_lanes(acc, k);
}

// Value i of x (in values, base included), any dtype, widened exactly: the scalar kernels' load.
fn load_x1(i: u32) -> f32 {
  return word_value(xWords[word_index(i)], i);
}

// Channels-first, scalar loads (any spatial size; float32, or half precision with HALF_FORMAT).
@compute @workgroup_size(WORKGROUP_SIZE)
fn stats_cf1(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wid: vec3u,
             @builtin(num_workgroups) nwg: vec3u) {
  let c = channel_of(wid, nwg);
  let p = wid.x * WORKGROUP_SIZE + lid;
  if (c >= params.channels || p >= params.lanes) { return; }
  let chan = params.base + c * params.cols;
  let k = load_x1(chan);
  var acc = Acc4(0u, vec4f(0.0), vec4f(0.0));
  let span = lane_columns(p);
  if (span.x >= span.y) {
    partials[c * params.lanes + p] = vec4f(0.0, 0.0, 0.0, k);
    return;
  }
  var rowStart = chan;
  for (var blockRow = 0u; blockRow < params.rows; blockRow += params.rowsPerBlock) {
    let kb = load_x1(rowStart + span.x);
    var s1 = 0.0;
    var s2 = 0.0;
    var b = 0u;
    let blockEnd = min(blockRow + params.rowsPerBlock, params.rows);
    for (var row = blockRow; row < blockEnd; row++) {
      let rowEnd = rowStart + span.y;
      for (var idx = rowStart + span.x; idx < rowEnd; idx += span.z) {
        let v = load_x1(idx) - kb;
        s1 += v;
        s2 = fma(v, v, s2);
        b += 1u;
      }
      rowStart += params.rowStride;
    }
    merge_block4(&acc, b, vec4f(kb - k), vec4f(s1), vec4f(s2));
  }
  partials[c * params.lanes + p] = vec4f(bitcast<f32>(acc.n), acc.mean.x, acc.m2.x, k);
}

// Channels-last, vec4 loads (C % 4 == 0): invocation i owns channels 4*col..4*col+3 and every
// `lanes`-th row starting at its lane, so neighbouring invocations read neighbouring addresses.
@compute @workgroup_size(WORKGROUP_SIZE)
fn stats_cl4(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wid: vec3u,
             @builtin(num_workgroups) nwg: vec3u) {
  let i = invocation(wid, nwg, lid);
  if (i >= params.lanes * params.cols) { return; }
  let col = i % params.cols;
  let k = x[params.base + col];
  var row = i / params.cols;
  var idx = params.base + row * params.rowStride + col;
  var acc = Acc4(0u, vec4f(0.0), vec4f(0.0));
  loop {
    if (row >= params.rows) { break; }
    let kb = x[idx];
    var s1 = vec4f(0.0);
    var s2 = vec4f(0.0);
    var b = 0u;
    loop {
      if (b >= BLOCK || row >= params.rows) { break; }
      let v = x[idx] - kb;
      s1 += v;
      s2 = fma(v, v, s2);
      b += 1u;
      row += params.lanes;
      idx += params.stepIndex;
    }
    merge_block4(&acc, b, kb - k, s1, s2);
  }
  let lane = i / params.cols;
  let c0 = col * 4u;
  for (var l = 0u; l < 4u; l++) {
    partials[(c0 + l) * params.lanes + lane] = vec4f(bitcast<f32>(acc.n), acc.mean[l], acc.m2[l], k[l]);
  }
}

// Channels-last, scalar loads (any C; float32, or half precision with HALF_FORMAT).
@compute @workgroup_size(WORKGROUP_SIZE)
fn stats_cl1(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wid: vec3u,
             @builtin(num_workgroups) nwg: vec3u) {
  let i = invocation(wid, nwg, lid);
  if (i >= params.lanes * params.cols) { return; }
  let col = i % params.cols;
  let k = load_x1(params.base + col);
  var row = i / params.cols;
  var idx = params.base + row * params.rowStride + col;
  var acc = Acc4(0u, vec4f(0.0), vec4f(0.0));
  loop {
    if (row >= params.rows) { break; }
    let kb = load_x1(idx);
    var s1 = 0.0;
    var s2 = 0.0;
    var b = 0u;
    loop {
      if (b >= BLOCK || row >= params.rows) { break; }
      let v = load_x1(idx) - kb;
      s1 += v;
      s2 = fma(v, v, s2);
      b += 1u;
      row += params.lanes;
      idx += params.stepIndex;
    }
    merge_block4(&acc, b, vec4f(kb - k), vec4f(s1), vec4f(s2));
  }
  partials[col * params.lanes + i / params.cols] = vec4f(bitcast<f32>(acc.n), acc.mean.x, acc.m2.x, k);
}

// Word i of a half-precision x: its two values, widened exactly.
fn load_xw(i: u32) -> vec2f {
  return unpack_half2(xWords[i]);
}

// Chan merge of the two equal-count lanes of a word accumulator into one partial.
fn collapse_lanes2(acc: Acc4, k: f32) -> vec4f {
  let mean = 0.5 * (acc.mean.x + acc.mean.y);
  let dm = acc.mean.xy - vec2f(mean);
  return vec4f(bitcast<f32>(acc.n * 2u), mean, acc.m2.x + acc.m2.y + f32(acc.n) * dot(dm, dm), k);
}

// Channels-first, half-precision x with even spatial: stats_cf4 over words (cols = spatial / 2).
@compute @workgroup_size(WORKGROUP_SIZE)
fn stats_cf2h(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wid: vec3u,
              @builtin(num_workgroups) nwg: vec3u) {
  let c = channel_of(wid, nwg);
  let p = wid.x * WORKGROUP_SIZE + lid;
  if (c >= params.channels || p >= params.lanes) { return; }
  let chan = params.base + c * params.cols;
  let k = load_xw(chan).x;
  var acc = Acc4(0u, vec4f(0.0), vec4f(0.0));
  let span = lane_columns(p);
  if (span.x >= span.y) {
    partials[c * params.lanes + p] = vec4f(0.0, 0.0, 0.0, k);
    return;
  }
  var rowStart = chan;
  for (var blockRow = 0u; blockRow < params.rows; blockRow += params.rowsPerBlock) {
    let kb = load_xw(rowStart + span.x);
    var s1 = vec2f(0.0);
    var s2 = vec2f(0.0);
    var b = 0u;
    let blockEnd = min(blockRow + params.rowsPerBlock, params.rows);
    for (var row = blockRow; row < blockEnd; row++) {
      let rowEnd = rowStart + span.y;
      for (var idx = rowStart + span.x; idx < rowEnd; idx += span.z) {
        let v = load_xw(idx) - kb;
        s1 += v;
        s2 = fma(v, v, s2);
        b += 1u;
      }
      rowStart += params.rowStride;
    }
    merge_block4(&acc, b, vec4f(kb - vec2f(k), 0.0, 0.0), vec4f(s1, 0.0, 0.0), vec4f(s2, 0.0, 0.0));
  }
  partials[c * params.lanes + p] = collapse_lanes2(acc, k);
}

// Channels-last, half-precision x with even C: invocation i owns channels 2·col, 2·col + 1.
@compute @workgroup_size(WORKGROUP_SIZE)
fn stats_cl2h(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wid: vec3u,
              @builtin(num_workgroups) nwg: vec3u) {
  let i = invocation(wid, nwg, lid);
  if (i >= params.lanes * params.cols) { return; }
  let col = i % params.cols;
  let k = load_xw(params.base + col);
  var row = i / params.cols;
  var idx = params.base + row * params.rowStride + col;
  var acc = Acc4(0u, vec4f(0.0), vec4f(0.0));
  loop {
    if (row >= params.rows) { break; }
    let kb = load_xw(idx);
    var s1 = vec2f(0.0);
    var s2 = vec2f(0.0);
    var b = 0u;
    loop {
      if (b >= BLOCK || row >= params.rows) { break; }
      let v = load_xw(idx) - kb;
      s1 += v;
      s2 = fma(v, v, s2);
      b += 1u;
      row += params.lanes;
      idx += params.stepIndex;
    }
    merge_block4(&acc, b, vec4f(kb - k, 0.0, 0.0), vec4f(s1, 0.0, 0.0), vec4f(s2, 0.0, 0.0));
  }
  let lane = i / params.cols;
  let c0 = col * 2u;
  for (var l = 0u; l < 2u; l++) {
    partials[(c0 + l) * params.lanes + lane] = vec4f(bitcast<f32>(acc.n), acc.mean[l], acc.m2[l], k[l]);
  }
}
