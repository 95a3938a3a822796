// Candidate shapes of the normalize pass y = (x − K[c])·scale[c] + shift[c] (vec4 data), swept
// against the WGSL vec4 copy by bench/sweep/main.ts. Not library code: each entry is one way to
// walk the tensor and fetch the per-channel constants; the winners were ported to
// shaders/normalize.wgsl and shaders/backward-elementwise.wgsl (see bench/README.md, "Sweep").
//
// Views as in the library: channels-first rows = N·C planes of `cols` = S/4 vec4s (channel =
// row % C); channels-last rows = N·S rows of `cols` = C/4 vec4s (vec4 column = 4 channels).
// Constants: `packed[c]` = vec4(K, scale, shift, 0) per channel; from `planeBase`, three planes of
// `cols` vec4s (K, scale, shift of 4 channels each) for channels-last.

struct SweepParams {
  rows: u32,
  cols: u32,
  lanes: u32,      // row-lane walks: rows processed in parallel
  channels: u32,
  items: u32,      // vec4s (or rows) per invocation, per variant
  total: u32,      // rows * cols
  planeBase: u32,  // first vec4 of the channels-last planes in `consts`
  groupsX: u32,    // workgroups along x of the 2-D grid
}

@group(0) @binding(0) var<uniform> params: SweepParams;
@group(0) @binding(1) var<storage, read> x: array<vec4f>;
@group(0) @binding(2) var<storage, read_write> y: array<vec4f>;
@group(0) @binding(3) var<storage, read> consts: array<vec4f>;

override WORKGROUP_SIZE: u32 = 64u;

fn invocation(wid: vec3u, lid: u32) -> u32 {
  return (wid.x + wid.y * params.groupsX) * WORKGROUP_SIZE + lid;
}

// --- channels-first ---------------------------------------------------------------------------

// The library's pattern on fallback adapters: invocation i owns `items` contiguous vec4s of one
// row (blocksPerRow = ceil(cols / items) runs per row; the last one may be short).
@compute @workgroup_size(WORKGROUP_SIZE)
fn cf_run(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wid: vec3u) {
  let i = invocation(wid, lid);
  let blocksPerRow = (params.cols + params.items - 1u) / params.items;
  let row = i / blocksPerRow;
  if (row >= params.rows) { return; }
  let k = consts[row % params.channels];
  let rowStart = row * params.cols;
  let start = rowStart + (i - row * blocksPerRow) * params.items;
  let end = min(start + params.items, rowStart + params.cols);
  for (var j = start; j < end; j++) {
    y[j] = fma(x[j] - vec4f(k.x), vec4f(k.y), vec4f(k.z));
  }
}

// Invocation i owns the flat span [i·items, (i + 1)·items): the copy's blocked pattern. The span
// is walked row segment by row segment, the constants fetched once per segment (no branch per
// element); with items dividing cols (or a multiple of it) every span is one (or whole) rows.
@compute @workgroup_size(WORKGROUP_SIZE)
fn cf_span(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wid: vec3u) {
  let i = invocation(wid, lid);
  var j = i * params.items;
  let end = min(j + params.items, params.total);
  var row = j / params.cols;
  var c = row % params.channels;
  var segEnd = (row + 1u) * params.cols;
  loop {
    if (j >= end) { break; }
    let k = consts[c];
    let stop = min(segEnd, end);
    for (; j < stop; j++) {
      y[j] = fma(x[j] - vec4f(k.x), vec4f(k.y), vec4f(k.z));
    }
    segEnd += params.cols;
    c += 1u;
    if (c == params.channels) { c = 0u; }
  }
}

// As cf_span with a fixed trip count and a bounds test per element (the copy floor's loop shape).
@compute @workgroup_size(WORKGROUP_SIZE)
fn cf_span_fixed(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wid: vec3u) {
  let i = invocation(wid, lid);
  let start = i * params.items;
  let row = start / params.cols;
  let k = consts[row % params.channels];
  for (var t = 0u; t < params.items; t++) {
    let j = start + t;
    if (j < params.total) {
      y[j] = fma(x[j] - vec4f(k.x), vec4f(k.y), vec4f(k.z));
    }
  }
}

// The library's coalesced (GPU) walk: column i % cols of rows lane, lane + lanes, ... with lanes
// a multiple of C (the channel never changes).
@compute @workgroup_size(WORKGROUP_SIZE)
fn cf_lanes(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wid: vec3u) {
  let i = invocation(wid, lid);
  if (i >= params.lanes * params.cols) { return; }
  let k = consts[(i / params.cols) % params.channels];
  let step = params.lanes * params.cols;
  for (var j = i; j < params.total; j += step) {
    y[j] = fma(x[j] - vec4f(k.x), vec4f(k.y), vec4f(k.z));
  }
}

// --- channels-last ----------------------------------------------------------------------------

fn plane4(p: u32, col: u32) -> vec4f {
  return consts[params.planeBase + p * params.cols + col];
}

// The library's walk: invocation i owns vec4 column i % cols, rows lane, lane + lanes, ...
@compute @workgroup_size(WORKGROUP_SIZE)
fn cl_lanes(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wid: vec3u) {
  let i = invocation(wid, lid);
  if (i >= params.lanes * params.cols) { return; }
  let col = i % params.cols;
  let k = plane4(0u, col);
  let scale = plane4(1u, col);
  let shift = plane4(2u, col);
  let step = params.lanes * params.cols;
  for (var j = i; j < params.total; j += step) {
    y[j] = fma(x[j] - k, scale, shift);
  }
}

// Invocation i owns vec4 column i % cols of `items` consecutive rows (row block i / cols):
// neighbouring invocations still touch neighbouring addresses, and one invocation's rows are
// adjacent in memory instead of `lanes` rows apart.
@compute @workgroup_size(WORKGROUP_SIZE)
fn cl_rows(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wid: vec3u) {
  let i = invocation(wid, lid);
  let block = i / params.cols;
  let col = i - block * params.cols;
  let firstRow = block * params.items;
  if (firstRow >= params.rows) { return; }
  let k = plane4(0u, col);
  let scale = plane4(1u, col);
  let shift = plane4(2u, col);
  let start = firstRow * params.cols + col;
  let end = min(firstRow + params.items, params.rows) * params.cols;
  for (var j = start; j < end; j += params.cols) {
    y[j] = fma(x[j] - k, scale, shift);
  }
}

// Invocation i owns the flat span [i·items, (i + 1)·items) (the copy's blocked pattern), stepping
// the vec4 column with a wrap test and loading that column's three constant vectors per element.
@compute @workgroup_size(WORKGROUP_SIZE)
fn cl_span(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wid: vec3u) {
  let i = invocation(wid, lid);
  let start = i * params.items;
  let end = min(start + params.items, params.total);
  var col = start % params.cols;
  for (var j = start; j < end; j++) {
    y[j] = fma(x[j] - plane4(0u, col), plane4(1u, col), plane4(2u, col));
    col += 1u;
    if (col == params.cols) { col = 0u; }
  }
}

// Invocation i owns 4 adjacent vec4 columns (16 channels: 12 constant vectors in registers,
// fetched once) of `items` consecutive rows: per row one contiguous 64-byte run. Needs cols % 4 == 0.
@compute @workgroup_size(WORKGROUP_SIZE)
fn cl_quad(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wid: vec3u) {
  let i = invocation(wid, lid);
  let quads = params.cols / 4u;
  let block = i / quads;
  let col = (i - block * quads) * 4u;
  let firstRow = block * params.items;
  if (firstRow >= params.rows) { return; }
  let k0 = plane4(0u, col);
  let k1 = plane4(0u, col + 1u);
  let k2 = plane4(0u, col + 2u);
  let k3 = plane4(0u, col + 3u);
  let s0 = plane4(1u, col);
  let s1 = plane4(1u, col + 1u);
  let s2 = plane4(1u, col + 2u);
  let s3 = plane4(1u, col + 3u);
  let b0 = plane4(2u, col);
  let b1 = plane4(2u, col + 1u);
  let b2 = plane4(2u, col + 2u);
  let b3 = plane4(2u, col + 3u);
  let start = firstRow * params.cols + col;
  let end = min(firstRow + params.items, params.rows) * params.cols;
  for (var j = start; j < end; j += params.cols) {
    y[j] = fma(x[j] - k0, s0, b0);
    y[j + 1u] = fma(x[j + 1u] - k1, s1, b1);
    y[j + 2u] = fma(x[j + 2u] - k2, s2, b2);
    y[j + 3u] = fma(x[j + 3u] - k3, s3, b3);
  }
}
