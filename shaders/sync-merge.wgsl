// SyncBatchNorm's merge on the GPU: S shards' records, all-gathered by the caller into one buffer,
// reduced per channel into the whole batch's, with no readback. One invocation per channel.
//
// sync_merge_moments: S moments records (SyncBatchNorm.encodeMomentsPartial's layout,
//   vec4(K, mean − K, M2, bitcast<f32>(count)), shard s channel c at recordBase + s·C + c) into one
//   merged record per channel at outBase + 2c: vec4u(mean, M2 as binary64 bits lo/hi), then
//   vec4u(count, 0, 0, 0) (SYNC_MERGED_RECORD_BYTES).
// sync_merge_grad: S gradient records (encodeGradPartial's layout: C floats Σdy, then C floats
//   Σdy·x̂; shard s at recordBase + s·2C) into one record of that layout at outBase.
//
// Algorithm: the host's merges themselves (src/sync/sync-merge.ts, mergeMoments and
// mergeGradSums, float64), run in emulated binary64 (common/f64.wgsl: WGSL has no f64, so adds,
// multiplies, divides are done on u32 limbs with round-to-nearest-even), so the GPU result has the
// host's bits on every device. Source of the moments merge: Chan, Golub & LeVeque's pairwise
// update as PyTorch's batch_norm_gather_stats_with_counts merges ranks.
// - Canonical order, as the host sorts: each channel's records are visited by repeated selection
//   of the next larger key (O(S²) reads per channel, S the number of shards), keys being total
//   orders on the values: moments by (count, mean = K + (mean − K) in binary64, M2), gradient
//   values ascending (−0 before +0). Equal keys are equal values, so ties contribute identically,
//   and the bits are a function of the multiset of records alone.
// - Moments, per record with count nb > 0 and a finite mean, mergeMoments' fold operation by
//   operation: merged = n + nb; d = mb − mu; mu += (d·nb)/merged; M2 += sb + (d·d·n·nb)/merged.
//   A record whose mean is ±Inf or NaN adds its count, and its mean to the sum of non-finite
//   means (NaN when they disagree or one is NaN); the merged mean is then that sum and M2 NaN; a
//   non-finite M2 combines as IEEE addition; no values at all give NaN, NaN, count 0.
// - Gradient sums, per channel and plane: the S values summed from +0 in the ascending order,
//   then rounded once to float32: the bits of mergeGradSums stored into a Float32Array.
// Every NaN written is the canonical quiet NaN.

struct MergeParams {
  channels: u32,
  shards: u32,
  recordBase: u32,  // the gathered binding's index of shard 0's channel 0 (vec4s, or f32s for sums)
  outBase: u32,     // the output binding's index of channel 0 (vec4s, or f32s for sums)
}

@group(0) @binding(0) var<uniform> params: MergeParams;
@group(0) @binding(1) var<storage, read> gathered: array<vec4f>;
// Per channel two vec4u: (mean lo, mean hi, M2 lo, M2 hi) as binary64 bits, then (count, 0, 0, 0).
@group(0) @binding(2) var<storage, read_write> mergedF64: array<vec4u>;
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

// mergeMoments' sort key (count, mean, M2) of a record, as a total order on its bits: the binary64
// mean's order key, then M2's; a record whose mean is not finite sorts after every finite one of
// its count (its place does not matter: it only sets flags), keyed by its K and mean − K.
fn record_key(r: vec4f) -> vec4u {
  let n = bitcast<u32>(r.w);
  if (!is_finite(r.x) || !is_finite(r.y)) { return vec4u(n, 0xffffffffu, order_key(r.x), order_key(r.y)); }
  let k = f64_order_key(record_mean(r));
  return vec4u(n, k.y, k.x, order_key(r.z));
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

// A moments record's mean K + (mean − K) in binary64, as decodeMomentsRecords forms it.
fn record_mean(r: vec4f) -> F64 {
  return f64_add(f64_from_f32(r.x), f64_from_f32(r.y));
}

// The IEEE specials a sum of float32 terms has met: it is NaN when they include a NaN or both
// infinities (special_is_nan), else the one infinity (special_any), else the finite sum.
struct Specials {
  nan: bool,
  posInf: bool,
  negInf: bool,
}

fn note_special(s: ptr<function, Specials>, bits: u32) {
  (*s).nan = (*s).nan || (bits & F32_MAGNITUDE_BITS) > F32_EXPONENT_BITS;
  (*s).posInf = (*s).posInf || bits == F32_EXPONENT_BITS;
  (*s).negInf = (*s).negInf || bits == F32_NEG_INF_BITS;
}

fn special_is_nan(s: Specials) -> bool {
  return s.nan || (s.posInf && s.negInf);
}

fn special_any(s: Specials) -> bool {
  return s.nan || s.posInf || s.negInf;
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn sync_merge_moments(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wid: vec3u,
                      @builtin(num_workgroups) nwg: vec3u) {
  let c = invocation(wid, nwg, lid);
  if (c >= params.channels) { return; }
  var total = 0u;
  var n = 0u;
  var mu = F64(false, 0, vec2u(0u));
  var s2 = F64(false, 0, vec2u(0u));
  // Means and M2 values that are not finite (a shard's overflow or NaN): IEEE addition by flags.
  var special = Specials(false, false, false);
  var m2Special = Specials(false, false, false);
  var after = vec4u(0u);
  var started = false;
  loop {
    let next = next_record(c, after, started);
    if (next.repeats == 0u) { break; }
    after = next.key;
    started = true;
    let r = gathered[params.recordBase + next.shard * params.channels + c];
    let nb = bitcast<u32>(r.w);
    if (nb == 0u) { continue; }
    total += nb * next.repeats;
    if (!is_finite(r.x) || !is_finite(r.y)) {
      note_special(&special, bitcast<u32>(ieee_add(r.x, r.y)));
      continue;
    }
    let mb = record_mean(r);
    note_special(&m2Special, bitcast<u32>(r.z));
    let m2Finite = is_finite(r.z);
    let sb = f64_from_f32(select(0.0, r.z, m2Finite));
    let fb = f64_from_u32(nb);
    for (var i = 0u; i < next.repeats; i++) {
      // mergeMoments' fold, operation by operation: merged = n + nb; d = mb − mu;
      // mu += (d·nb)/merged; s += sb + (d·d·n·nb)/merged.
      let merged = n + nb;
      let fm = f64_from_u32(merged);
      let d = f64_add(mb, f64_neg(mu));
      mu = f64_add(mu, f64_div(f64_mul(d, fb), fm));
      let t = f64_div(f64_mul(f64_mul(f64_mul(d, d), f64_from_u32(n)), fb), fm);
      s2 = f64_add(s2, f64_add(sb, t));
      n = merged;
    }
  }
  // Binary64 bits (lo, hi): the mean, then M2; the count follows in the second vec4.
  let nanBits = vec2u(0u, F64_QUIET_NAN_HI);
  var meanBits = f64_bits(mu);
  var m2Out = f64_bits(s2);
  if (total == 0u) {
    meanBits = nanBits;
    m2Out = nanBits;
  } else if (special_any(special)) {
    meanBits = nanBits;
    if (!special_is_nan(special)) { meanBits = vec2u(0u, select(F64_INF_HI, F64_NEG_INF_HI, special.negInf)); }
    m2Out = nanBits;
  } else if (special_is_nan(m2Special)) {
    m2Out = nanBits;
  } else if (special_any(m2Special)) {
    m2Out = vec2u(0u, select(F64_INF_HI, F64_NEG_INF_HI, m2Special.negInf));
  }
  mergedF64[params.outBase + 2u * c] = vec4u(meanBits, m2Out);
  mergedF64[params.outBase + 2u * c + 1u] = vec4u(total, 0u, 0u, 0u);
}

// One plane's S values of channel c, summed in ascending total order in emulated float64
// (common/f64.wgsl) and rounded once to float32: mergeGradSums' bits, rounded as a
// Float32Array store rounds them. ±Inf and NaN go by flags, as IEEE addition combines them.
fn merge_sum(c: u32, plane: u32) -> f32 {
  let stride = 2u * params.channels;
  let first = params.recordBase + plane * params.channels + c;
  var sum = F64(false, 0, vec2u(0u));
  var special = Specials(false, false, false);
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
    if (!is_finite(value)) {
      note_special(&special, bitcast<u32>(value));
      continue;
    }
    let term = f64_from_f32(value);
    for (var i = 0u; i < repeats; i++) { sum = f64_add(sum, term); }
  }
  if (special_is_nan(special)) { return f32_nan(); }
  if (special_any(special)) { return f32_inf(special.negInf); }
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
