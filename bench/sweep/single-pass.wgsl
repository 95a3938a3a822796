// Issue #10 §3 experiment (bench only): the training forward in ONE dispatch when a channel's data
// fits on chip, after cuDNN's persistent batch norm. One workgroup owns one channel (channels-
// first) or one vec4 column = 4 channels (channels-last) and:
//   1. accumulates shifted sums s1 = Σ(x − K), s2 = Σ(x − K)² per invocation (K = the channel's
//      first value, as stats.wgsl), and with STAGE copies each value into workgroup memory;
//   2. publishes its (count, mean, M2) partial; after a barrier invocation 0 merges the WG
//      partials with Chan's formula (as finalize.wgsl), derives scale/shift, updates the running
//      statistics (momentum) and records mean / invstd; a second barrier publishes the constants;
//   3. normalizes its values: from workgroup memory with STAGE, else re-reading x (cache-hot on a
//      CPU adapter).
// So x is read from memory once (STAGE) and there is no partials buffer, no finalize dispatch.
// Work split: channels-first rows (n) are cut into `parts` pieces so WG invocations get equal
// contiguous runs; channels-last each invocation owns a contiguous run of rows.

struct SinglePassParams {
  rows: u32,      // channels-first: N; channels-last: N·S
  cols: u32,      // channels-first: S/4; channels-last: C/4
  channels: u32,
  parts: u32,     // channels-first: pieces per row
  partLen: u32,   // channels-first: vec4s per piece; channels-last: rows per invocation
  groupsX: u32,
  eps: f32,
  momentum: f32,
}

@group(0) @binding(0) var<uniform> params: SinglePassParams;
@group(0) @binding(1) var<storage, read> x: array<vec4f>;
@group(0) @binding(2) var<storage, read_write> y: array<vec4f>;
// Per channel: weight, bias (read); running mean, running var (updated); mean, invstd (written).
@group(0) @binding(3) var<storage, read> weight: array<f32>;
@group(0) @binding(4) var<storage, read> bias: array<f32>;
@group(0) @binding(5) var<storage, read_write> running: array<vec2f>;
@group(0) @binding(6) var<storage, read_write> saved: array<vec2f>;

override WORKGROUP_SIZE: u32 = 64u;
override STAGE: bool = false;
// vec4s of workgroup memory for staging (the host sizes it to the channel, within the limit).
override TILE: u32 = 1u;

var<workgroup> tile: array<vec4f, TILE>;
var<workgroup> partialN: array<f32, WORKGROUP_SIZE>;
var<workgroup> partialMean: array<vec4f, WORKGROUP_SIZE>;
var<workgroup> partialM2: array<vec4f, WORKGROUP_SIZE>;
var<workgroup> constants: array<vec4f, 2>; // scale, shift (relative to K) per lane

fn unit_id(wid: vec3u) -> u32 {
  return wid.x + wid.y * params.groupsX;
}

// Invocation 0: merge partials (Chan), update running stats of `channel` lanes, publish constants.
fn finalize(channel: u32, lanes: u32, kShift: vec4f) {
  var n = 0.0;
  var mean = vec4f(0.0);
  var m2 = vec4f(0.0);
  for (var p = 0u; p < WORKGROUP_SIZE; p++) {
    let nb = partialN[p];
    if (nb == 0.0) { continue; }
    let total = n + nb;
    let d = partialMean[p] - mean;
    mean += d * (nb / total);
    m2 += partialM2[p] + d * d * (n * nb / total);
    n = total;
  }
  var scale = vec4f(0.0);
  var shift = vec4f(0.0);
  for (var l = 0u; l < lanes; l++) {
    let c = channel + l;
    let invstd = 1.0 / sqrt(m2[l] / n + params.eps);
    let s = weight[c] * invstd;
    scale[l] = s;
    shift[l] = bias[c] - mean[l] * s;
    let m = mean[l] + kShift[l];
    let r = running[c];
    running[c] = vec2f(r.x + params.momentum * (m - r.x), r.y + params.momentum * (m2[l] / (n - 1.0) - r.y));
    saved[c] = vec2f(m, invstd);
  }
  constants[0] = scale;
  constants[1] = shift;
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn single_pass_cf4(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wid: vec3u) {
  let c = unit_id(wid);
  let cols = params.cols;
  let rowStride = params.channels * cols;
  let k = x[c * cols].x;
  let units = params.rows * params.parts;
  var s1 = vec4f(0.0);
  var s2 = vec4f(0.0);
  var count = 0u;
  for (var u = lid; u < units; u += WORKGROUP_SIZE) {
    let n = u / params.parts;
    let start = (u - n * params.parts) * params.partLen;
    let end = min(start + params.partLen, cols);
    let base = n * rowStride + c * cols;
    let tileBase = n * cols;
    for (var j = start; j < end; j++) {
      let v = x[base + j];
      if (STAGE) { tile[tileBase + j] = v; }
      let d = v - vec4f(k);
      s1 += d;
      s2 += d * d;
    }
    count += end - start;
  }
  // Horizontal: the 4 lanes are the same channel.
  let fn4 = f32(count * 4u);
  let t1 = s1.x + s1.y + s1.z + s1.w;
  let t2 = s2.x + s2.y + s2.z + s2.w;
  partialN[lid] = fn4;
  if (count > 0u) {
    let m = t1 / fn4;
    partialMean[lid] = vec4f(m);
    partialM2[lid] = vec4f(max(t2 - t1 * m, 0.0));
  } else {
    partialMean[lid] = vec4f(0.0);
    partialM2[lid] = vec4f(0.0);
  }
  workgroupBarrier();
  if (lid == 0u) { finalize(c, 1u, vec4f(k)); }
  workgroupBarrier();
  let scale = constants[0].x;
  let shift = constants[1].x;
  for (var u = lid; u < units; u += WORKGROUP_SIZE) {
    let n = u / params.parts;
    let start = (u - n * params.parts) * params.partLen;
    let end = min(start + params.partLen, cols);
    let base = n * rowStride + c * cols;
    let tileBase = n * cols;
    for (var j = start; j < end; j++) {
      var v: vec4f;
      if (STAGE) { v = tile[tileBase + j]; } else { v = x[base + j]; }
      y[base + j] = fma(v - vec4f(k), vec4f(scale), vec4f(shift));
    }
  }
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn single_pass_cl4(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wid: vec3u) {
  let col = unit_id(wid);
  let cols = params.cols;
  let k = x[col];
  let first = min(lid * params.partLen, params.rows);
  let last = min(first + params.partLen, params.rows);
  var s1 = vec4f(0.0);
  var s2 = vec4f(0.0);
  for (var r = first; r < last; r++) {
    let v = x[r * cols + col];
    if (STAGE) { tile[r] = v; }
    let d = v - k;
    s1 += d;
    s2 += d * d;
  }
  let fn1 = f32(last - first);
  partialN[lid] = fn1;
  if (last > first) {
    let m = s1 / fn1;
    partialMean[lid] = m;
    partialM2[lid] = max(s2 - s1 * m, vec4f(0.0));
  } else {
    partialMean[lid] = vec4f(0.0);
    partialM2[lid] = vec4f(0.0);
  }
  workgroupBarrier();
  if (lid == 0u) { finalize(col * 4u, 4u, k); }
  workgroupBarrier();
  let scale = constants[0];
  let shift = constants[1];
  for (var r = first; r < last; r++) {
    var v: vec4f;
    if (STAGE) { v = tile[r]; } else { v = x[r * cols + col]; }
    y[r * cols + col] = fma(v - k, scale, shift);
  }
}

// The same in one dispatch without barriers or workgroup memory: one invocation per channel
// (channels-first) or per vec4 column (channels-last) sums its whole channel, then normalizes it,
// re-reading x while it is still in the CPU adapter's cache. Shifted sums as above, Chan's merge
// per row of the channel so float32 sums stay short.
fn serial_finalize(channel: u32, lanes: u32, kShift: vec4f, n: f32, mean: vec4f, m2: vec4f) -> array<vec4f, 2> {
  var scale = vec4f(0.0);
  var shift = vec4f(0.0);
  for (var l = 0u; l < lanes; l++) {
    let c = channel + l;
    let invstd = 1.0 / sqrt(m2[l] / n + params.eps);
    let s = weight[c] * invstd;
    scale[l] = s;
    shift[l] = bias[c] - mean[l] * s;
    let m = mean[l] + kShift[l];
    let r = running[c];
    running[c] = vec2f(r.x + params.momentum * (m - r.x), r.y + params.momentum * (m2[l] / (n - 1.0) - r.y));
    saved[c] = vec2f(m, invstd);
  }
  return array<vec4f, 2>(scale, shift);
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn serial_cf4(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wid: vec3u) {
  let c = unit_id(wid) * WORKGROUP_SIZE + lid;
  if (c >= params.channels) { return; }
  let cols = params.cols;
  let rowStride = params.channels * cols;
  let k = x[c * cols].x;
  var n = 0.0;
  var mean = 0.0;
  var m2 = 0.0;
  let fb = f32(cols * 4u);
  for (var r = 0u; r < params.rows; r++) {
    let base = r * rowStride + c * cols;
    var s1 = vec4f(0.0);
    var s2 = vec4f(0.0);
    for (var j = 0u; j < cols; j++) {
      let d = x[base + j] - vec4f(k);
      s1 += d;
      s2 += d * d;
    }
    let t1 = s1.x + s1.y + s1.z + s1.w;
    let bm = t1 / fb;
    let bm2 = max(s2.x + s2.y + s2.z + s2.w - t1 * bm, 0.0);
    let total = n + fb;
    let d = bm - mean;
    mean += d * (fb / total);
    m2 += bm2 + d * d * (n * fb / total);
    n = total;
  }
  let kc = serial_finalize(c, 1u, vec4f(k), n, vec4f(mean), vec4f(m2));
  let scale = kc[0].x;
  let shift = kc[1].x;
  for (var r = 0u; r < params.rows; r++) {
    let base = r * rowStride + c * cols;
    for (var j = 0u; j < cols; j++) {
      y[base + j] = fma(x[base + j] - vec4f(k), vec4f(scale), vec4f(shift));
    }
  }
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn serial_cl4(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wid: vec3u) {
  let col = unit_id(wid) * WORKGROUP_SIZE + lid;
  let cols = params.cols;
  if (col >= cols) { return; }
  let k = x[col];
  var n = 0.0;
  var mean = vec4f(0.0);
  var m2 = vec4f(0.0);
  // Blocks of partLen rows, merged with Chan's formula.
  for (var first = 0u; first < params.rows; first += params.partLen) {
    let last = min(first + params.partLen, params.rows);
    var s1 = vec4f(0.0);
    var s2 = vec4f(0.0);
    for (var r = first; r < last; r++) {
      let d = x[r * cols + col] - k;
      s1 += d;
      s2 += d * d;
    }
    let fb = f32(last - first);
    let bm = s1 / fb;
    let bm2 = max(s2 - s1 * bm, vec4f(0.0));
    let total = n + fb;
    let d = bm - mean;
    mean += d * (fb / total);
    m2 += bm2 + d * d * (n * fb / total);
    n = total;
  }
  let kc = serial_finalize(col * 4u, 4u, k, n, mean, m2);
  for (var r = 0u; r < params.rows; r++) {
    y[r * cols + col] = fma(x[r * cols + col] - k, kc[0], kc[1]);
  }
}

// Backward (batch statistics) in one dispatch, one invocation per channel / vec4 column: sums
// Σdy and Σdy·(x − mean) over the channel, writes grad_weight / grad_bias, then
//   dx = (dy − Σdy/M − (x − mean)·Σdy·(x − mean)/M·invstd²)·invstd·weight
// re-reading x and dy while they are cache-hot (PyTorch's batch_norm_backward_elemt formula).
@group(0) @binding(7) var<storage, read> dy: array<vec4f>;
@group(0) @binding(8) var<storage, read_write> grads: array<vec2f>; // (grad_weight, grad_bias)

fn backward_coefficients(channel: u32, lanes: u32, m: f32, sumDy: vec4f, sumDyXmu: vec4f) -> array<vec4f, 4> {
  var mean = vec4f(0.0);
  var a = vec4f(0.0);
  var b = vec4f(0.0);
  var d = vec4f(0.0);
  for (var l = 0u; l < lanes; l++) {
    let c = channel + l;
    let s = saved[c];
    let invstd = s.y;
    grads[c] = vec2f(sumDyXmu[l] * invstd, sumDy[l]);
    let w = weight[c] * invstd;
    mean[l] = s.x;
    a[l] = w;
    b[l] = sumDyXmu[l] / m * invstd * invstd * w;
    d[l] = sumDy[l] / m * w;
  }
  return array<vec4f, 4>(mean, a, b, d);
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn serial_backward_cf4(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wid: vec3u) {
  let c = unit_id(wid) * WORKGROUP_SIZE + lid;
  if (c >= params.channels) { return; }
  let cols = params.cols;
  let rowStride = params.channels * cols;
  let mean = saved[c].x;
  var s1 = vec4f(0.0);
  var s2 = vec4f(0.0);
  for (var r = 0u; r < params.rows; r++) {
    let base = r * rowStride + c * cols;
    for (var j = 0u; j < cols; j++) {
      let g = dy[base + j];
      s1 += g;
      s2 += g * (x[base + j] - vec4f(mean));
    }
  }
  let m = f32(params.rows * cols * 4u);
  let k = backward_coefficients(c, 1u, m, vec4f(s1.x + s1.y + s1.z + s1.w), vec4f(s2.x + s2.y + s2.z + s2.w));
  let a = k[1].x;
  let b = k[2].x;
  let d = k[3].x;
  for (var r = 0u; r < params.rows; r++) {
    let base = r * rowStride + c * cols;
    for (var j = 0u; j < cols; j++) {
      y[base + j] = dy[base + j] * a - (x[base + j] - vec4f(mean)) * b - vec4f(d);
    }
  }
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn serial_backward_cl4(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wid: vec3u) {
  let col = unit_id(wid) * WORKGROUP_SIZE + lid;
  let cols = params.cols;
  if (col >= cols) { return; }
  let mean = vec4f(saved[4u * col].x, saved[4u * col + 1u].x, saved[4u * col + 2u].x, saved[4u * col + 3u].x);
  var s1 = vec4f(0.0);
  var s2 = vec4f(0.0);
  for (var r = 0u; r < params.rows; r++) {
    let g = dy[r * cols + col];
    s1 += g;
    s2 += g * (x[r * cols + col] - mean);
  }
  let k = backward_coefficients(col * 4u, 4u, f32(params.rows), s1, s2);
  for (var r = 0u; r < params.rows; r++) {
    let i = r * cols + col;
    y[i] = dy[i] * k[1] - (x[i] - mean) * k[2] - k[3];
  }
}
