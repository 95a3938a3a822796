// SyncBatchNorm's merge on the GPU: S shards' records, all-gathered by the caller into one buffer,
// reduced per channel into the whole batch's, with no readback. One invocation per channel.
//
// sync_merge_moments: S moments records (SyncBatchNorm.encodeMomentsPartial's layout,
//   vec4(K, mean − K, M2, bitcast<f32>(count)), shard s channel c at recordBase + s·C + c) into one
//   record of the same layout per channel, at outBase + c.
// sync_merge_grad: S gradient records (encodeGradPartial's layout: C floats Σdy, then C floats
//   Σdy·x̂; shard s at recordBase + s·2C) into one record of that layout at outBase.
//
// Algorithm. The host merge (src/sync/sync-merge.ts, mergeMoments / mergeGradSums) is float64;
// WGSL has no f64. The gradient sums emulate float64 addition (common/f64-sum.wgsl), so they
// equal the host's bit for bit; the moments merge is float32 with mergeMoments' semantics, made
// deterministic and independent of the order of the shards: each channel's records are visited in a canonical
// order, a total order on their bits (count, then K, mean − K, M2 by IEEE total order, −0 before
// +0), by repeated selection of the next larger key (O(S²) reads per channel: S is the number of
// shards). Equal keys are equal bits, so ties contribute identically. Arithmetic is float32 adds
// and multiplies only (WGSL rounds them correctly; no fused multiply-add is written, and the
// non-finite / overflow cases go through common/non-finite.wgsl's bit-tested helpers), plus one
// correctly rounded reciprocal of an integer count done in integer arithmetic (WGSL's f32
// division is only accurate to 2.5 ulp, which would make the result device-dependent). So the
// bits are a function of the multiset of records alone, and src/sync/sync-merge.ts's
// mergeMomentsRecords / mergeGradRecords reproduce them with Math.fround at every step.
//
// Moments, per channel, over the records with count n_i > 0 whose K_i and (mean − K)_i are finite:
//   N = Σ n_i (u32, exact); K = the K of the first such record in canonical order;
//   δ_i = (K_i − K) + (mean − K)_i; S1 = Σ n_i·δ_i; meanOffset = S1 · (1/N);
//   M2 = Σ (M2_i + n_i·(δ_i − meanOffset)²)        (the two-pass form of Chan's merge)
// giving vec4(K, meanOffset, M2, N). Non-finite records, as in mergeMoments: a record whose
// K + (mean − K) is ±Inf or NaN contributes its count and its mean to the sum of non-finite means
// (NaN when they disagree or one is NaN), the merged record is vec4(that mean, 0, NaN, N_all);
// N_all = 0 gives vec4(NaN, 0, NaN, 0). Every NaN written is the canonical quiet NaN.
// Gradient sums, per channel and plane: the S values summed in ascending total order from +0 in
// emulated float64 (common/f64-sum.wgsl), exactly as mergeGradSums sums them, then rounded once
// to float32: the bits of mergeGradSums stored into a Float32Array.

struct MergeParams {
  channels: u32,
  shards: u32,
  recordBase: u32,  // the gathered binding's index of shard 0's channel 0 (vec4s, or f32s for sums)
  outBase: u32,     // the output binding's index of channel 0 (vec4s, or f32s for sums)
}

@group(0) @binding(0) var<uniform> params: MergeParams;
@group(0) @binding(1) var<storage, read> gathered: array<vec4f>;
@group(0) @binding(2) var<storage, read_write> merged: array<vec4f>;
@group(0) @binding(3) var<storage, read> gatheredGrad: array<f32>;
@group(0) @binding(4) var<storage, read_write> mergedGrad: array<f32>;

// IEEE total order as an unsigned key: negative values reversed below positive ones.
fn order_key(v: f32) -> u32 {
  let b = bitcast<u32>(v);
  return select(b | F32_SIGN_BIT, ~b, (b & F32_SIGN_BIT) != 0u);
}

fn key_less(a: vec4u, b: vec4u) -> bool {
  if (a.x != b.x) { return a.x < b.x; }
  if (a.y != b.y) { return a.y < b.y; }
  if (a.z != b.z) { return a.z < b.z; }
  return a.w < b.w;
}

fn record_key(r: vec4f) -> vec4u {
  return vec4u(bitcast<u32>(r.w), order_key(r.x), order_key(r.y), order_key(r.z));
}

// The smallest record key above `after` (any key when !started), the shard holding it and how many
// shards hold it; repeats = 0 when none is left.
struct NextRecord {
  shard: u32,
  key: vec4u,
  repeats: u32,
}

fn next_record(c: u32, after: vec4u, started: bool) -> NextRecord {
  var best = NextRecord(0u, vec4u(0u), 0u);
  for (var s = 0u; s < params.shards; s++) {
    let k = record_key(gathered[params.recordBase + s * params.channels + c]);
    if (started && !key_less(after, k)) { continue; }
    if (best.repeats == 0u || key_less(k, best.key)) {
      best = NextRecord(s, k, 1u);
    } else if (all(k == best.key)) {
      best.repeats += 1u;
    }
  }
  return best;
}

fn ieee_mul(a: f32, b: f32) -> f32 {
  return ieee_mul4(vec4f(a), vec4f(b)).x;
}

// n as float32, rounded once: both 16-bit halves are exact, so is the scaled high half.
fn count_f32(n: u32) -> f32 {
  return f32(n >> 16u) * 65536.0 + f32(n & 0xffffu);
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn sync_merge_moments(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wid: vec3u,
                      @builtin(num_workgroups) nwg: vec3u) {
  let c = invocation(wid, nwg, lid);
  if (c >= params.channels) { return; }
  var total = 0u;
  var finiteCount = 0u;
  var hasRef = false;
  var reference = 0.0;
  var s1 = 0.0;
  var posInf = false;
  var negInf = false;
  var nan = false;
  var after = vec4u(0u);
  var started = false;
  loop {
    let next = next_record(c, after, started);
    if (next.repeats == 0u) { break; }
    after = next.key;
    started = true;
    let r = gathered[params.recordBase + next.shard * params.channels + c];
    let n = bitcast<u32>(r.w);
    if (n == 0u) { continue; }
    total += n * next.repeats;
    if (!is_finite(r.x) || !is_finite(r.y)) {
      let mu = bitcast<u32>(ieee_add(r.x, r.y));
      nan = nan || (mu & F32_MAGNITUDE_BITS) > F32_EXPONENT_BITS;
      posInf = posInf || mu == F32_EXPONENT_BITS;
      negInf = negInf || mu == F32_NEG_INF_BITS;
      continue;
    }
    finiteCount += n * next.repeats;
    if (!hasRef) {
      reference = r.x;
      hasRef = true;
    }
    let t = ieee_mul(count_f32(n), ieee_add(ieee_add(r.x, -reference), r.y));
    for (var i = 0u; i < next.repeats; i++) { s1 = ieee_add(s1, t); }
  }
  var out: vec4f;
  if (total == 0u) {
    out = vec4f(f32_nan(), 0.0, f32_nan(), bitcast<f32>(0u));
  } else if (nan || posInf || negInf) {
    var mean = f32_nan();
    if (!nan && !(posInf && negInf)) { mean = f32_inf(negInf); }
    out = vec4f(mean, 0.0, f32_nan(), bitcast<f32>(total));
  } else {
    let meanOffset = ieee_mul(s1, recip_count(finiteCount));
    var m2 = 0.0;
    after = vec4u(0u);
    started = false;
    loop {
      let next = next_record(c, after, started);
      if (next.repeats == 0u) { break; }
      after = next.key;
      started = true;
      let r = gathered[params.recordBase + next.shard * params.channels + c];
      let n = bitcast<u32>(r.w);
      if (n == 0u) { continue; }
      let e = ieee_add(ieee_add(ieee_add(r.x, -reference), r.y), -meanOffset);
      let t = ieee_add(r.z, ieee_mul(count_f32(n), ieee_mul(e, e)));
      for (var i = 0u; i < next.repeats; i++) { m2 = ieee_add(m2, t); }
    }
    out = vec4f(reference, meanOffset, canonical_nan(m2), bitcast<f32>(total));
  }
  merged[params.outBase + c] = out;
}

// A NaN with any payload becomes the canonical quiet NaN, so NaN outputs compare by bits too.
fn canonical_nan(v: f32) -> f32 {
  return select(v, f32_nan(), (bitcast<u32>(v) & F32_MAGNITUDE_BITS) > F32_EXPONENT_BITS);
}

// One plane's S values of channel c, summed in ascending total order in emulated float64
// (common/f64-sum.wgsl) and rounded once to float32: mergeGradSums' bits, rounded as a
// Float32Array store rounds them. ±Inf and NaN go by flags, as IEEE addition combines them.
fn merge_sum(c: u32, plane: u32) -> f32 {
  let stride = 2u * params.channels;
  let first = params.recordBase + plane * params.channels + c;
  var sum = F64(false, 0, vec2u(0u));
  var posInf = false;
  var negInf = false;
  var nan = false;
  var after = 0u;
  var started = false;
  loop {
    var best = 0u;
    var value = 0.0;
    var repeats = 0u;
    for (var s = 0u; s < params.shards; s++) {
      let v = gatheredGrad[first + s * stride];
      let k = order_key(v);
      if (started && k <= after) { continue; }
      if (repeats == 0u || k < best) {
        best = k;
        value = v;
        repeats = 1u;
      } else if (k == best) {
        repeats += 1u;
      }
    }
    if (repeats == 0u) { break; }
    after = best;
    started = true;
    let bits = bitcast<u32>(value);
    if (!is_finite(value)) {
      nan = nan || (bits & F32_MAGNITUDE_BITS) > F32_EXPONENT_BITS;
      posInf = posInf || bits == F32_EXPONENT_BITS;
      negInf = negInf || bits == F32_NEG_INF_BITS;
      continue;
    }
    let term = f64_from_f32(value);
    for (var i = 0u; i < repeats; i++) { sum = f64_add(sum, term); }
  }
  if (nan || (posInf && negInf)) { return f32_nan(); }
  if (posInf || negInf) { return f32_inf(negInf); }
  return f64_to_f32(sum);
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn sync_merge_grad(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wid: vec3u,
                   @builtin(num_workgroups) nwg: vec3u) {
  let c = invocation(wid, nwg, lid);
  if (c >= params.channels) { return; }
  mergedGrad[params.outBase + c] = merge_sum(c, 0u);
  mergedGrad[params.outBase + params.channels + c] = merge_sum(c, 1u);
}
