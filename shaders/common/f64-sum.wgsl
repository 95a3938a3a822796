// IEEE-754 binary64 addition of float32 values, emulated in u32 arithmetic (WGSL has no f64), so
// that a sum on the GPU has the bits of the same sum in float64 on the host: SyncBatchNorm's
// gradient merge (sync-merge.wgsl) equals mergeGradSums (float64, src/sync/sync-merge.ts)
// rounded to float32, bit for bit.
//
// Scope: finite operands that are float32 values or float64 sums of a few of them. Such sums
// never leave binary64's normal range (|v| < 2^128·S, nonzero |v| ≥ 2^-149), so there are no
// float64 subnormals, overflows, infinities or NaNs here; the caller handles ±Inf and NaN
// operands by flags. Rounding is to nearest, ties to even, with guard, round and sticky bits
// (the textbook adder), and the final float64 → float32 conversion rounds the same way (also
// into float32's subnormal range and to ±Inf on overflow), as Float32Array stores do.

// A finite float64: value = (-1)^negative · m · 2^(e − 52) with m a 53-bit integer whose bit 52
// is set (m.y holds bits 32..52, m.x bits 0..31), or zero when m is 0.
struct F64 {
  negative: bool,
  e: i32,
  m: vec2u,
}

fn u64_add(a: vec2u, b: vec2u) -> vec2u {
  let lo = a.x + b.x;
  return vec2u(lo, a.y + b.y + select(0u, 1u, lo < a.x));
}

// a − b for a ≥ b.
fn u64_sub(a: vec2u, b: vec2u) -> vec2u {
  return vec2u(a.x - b.x, a.y - b.y - select(0u, 1u, a.x < b.x));
}

fn u64_less(a: vec2u, b: vec2u) -> bool {
  return a.y < b.y || (a.y == b.y && a.x < b.x);
}

fn u64_shl(a: vec2u, n: u32) -> vec2u {
  if (n == 0u) { return a; }
  if (n >= 64u) { return vec2u(0u); }
  if (n >= 32u) { return vec2u(0u, a.x << (n - 32u)); }
  return vec2u(a.x << n, (a.y << n) | (a.x >> (32u - n)));
}

// a >> n, with bit 0 set when any bit shifted out was set (the sticky bit).
fn u64_shr_sticky(a: vec2u, n: u32) -> vec2u {
  if (n == 0u) { return a; }
  if (n >= 64u) { return vec2u(select(0u, 1u, a.x != 0u || a.y != 0u), 0u); }
  var r: vec2u;
  var lost: bool;
  if (n >= 32u) {
    let k = n - 32u;
    r = vec2u(select(a.y >> k, a.y, k == 0u), 0u);
    lost = a.x != 0u || (k > 0u && (a.y & ((1u << k) - 1u)) != 0u);
  } else {
    r = vec2u((a.x >> n) | (a.y << (32u - n)), a.y >> n);
    lost = (a.x & ((1u << n) - 1u)) != 0u;
  }
  r.x |= select(0u, 1u, lost);
  return r;
}

fn u64_leading_zeros(a: vec2u) -> u32 {
  if (a.y != 0u) { return countLeadingZeros(a.y); }
  return 32u + countLeadingZeros(a.x);
}

// A finite float32 as an F64 (exact).
fn f64_from_f32(v: f32) -> F64 {
  let bits = bitcast<u32>(v);
  let negative = (bits & F32_SIGN_BIT) != 0u;
  let exp8 = (bits >> 23u) & 0xffu;
  let frac = bits & 0x7fffffu;
  if (exp8 == 0u) {
    if (frac == 0u) { return F64(negative, 0, vec2u(0u)); }
    // Subnormal: frac · 2^-149, normalized.
    let p = firstLeadingBit(frac);
    return F64(negative, i32(p) - 149, u64_shl(vec2u(frac, 0u), 52u - p));
  }
  return F64(negative, i32(exp8) - 127, u64_shl(vec2u(frac | 0x800000u, 0u), 29u));
}

// a + b in binary64, rounded to nearest even.
fn f64_add(a: F64, b: F64) -> F64 {
  let aZero = a.m.x == 0u && a.m.y == 0u;
  let bZero = b.m.x == 0u && b.m.y == 0u;
  if (bZero) {
    // x + 0 = x; for two zeros, −0 only when both are −0.
    if (aZero) { return F64(a.negative && b.negative, 0, vec2u(0u)); }
    return a;
  }
  if (aZero) { return b; }
  // big: the operand of larger magnitude.
  let aBigger = a.e > b.e || (a.e == b.e && !u64_less(a.m, b.m));
  var big = b;
  var small = a;
  if (aBigger) {
    big = a;
    small = b;
  }
  // Three extra low bits: guard, round, sticky.
  let mb = u64_shl(big.m, 3u);
  let ms = u64_shr_sticky(u64_shl(small.m, 3u), u32(big.e - small.e));
  var e = big.e;
  var m: vec2u;
  if (big.negative == small.negative) {
    m = u64_add(mb, ms);
    // A carry into bit 56: one more bit goes to the sticky bit.
    if ((m.y & 0x1000000u) != 0u) {
      m = u64_shr_sticky(m, 1u);
      e += 1;
    }
  } else {
    m = u64_sub(mb, ms);
    if (m.x == 0u && m.y == 0u) { return F64(false, 0, vec2u(0u)); }
    // Bring the leading bit back to bit 55 (a 56-bit quantity has 8 leading zeros in 64).
    let shift = u64_leading_zeros(m) - 8u;
    m = u64_shl(m, shift);
    e -= i32(shift);
  }
  let grs = m.x & 7u;
  m = u64_shr_exact(m, 3u);
  if (grs > 4u || (grs == 4u && (m.x & 1u) == 1u)) {
    m = u64_add(m, vec2u(1u, 0u));
    if ((m.y & 0x200000u) != 0u) {
      m = u64_shr_sticky(m, 1u);
      e += 1;
    }
  }
  return F64(big.negative, e, m);
}

// The F64 rounded to float32 (nearest even; subnormal results and overflow to ±Inf included).
fn f64_to_f32(v: F64) -> f32 {
  let sign = select(0u, F32_SIGN_BIT, v.negative);
  if (v.m.x == 0u && v.m.y == 0u) { return bitcast<f32>(sign); }
  if (v.e > 127) { return bitcast<f32>(sign | F32_EXPONENT_BITS); }
  // Keep 24 bits for a normal result, fewer below 2^-126.
  var drop = 29u;
  if (v.e < -126) { drop = 29u + u32(-126 - v.e); }
  if (drop > 60u) { return bitcast<f32>(sign); }
  let kept = u64_shr_exact(v.m, drop);
  let rest = u64_sub(v.m, u64_shl(kept, drop));
  let half = u64_shl(vec2u(1u, 0u), drop - 1u);
  var q = kept.x;
  if (u64_less(half, rest) || (all(rest == half) && (q & 1u) == 1u)) { q += 1u; }
  if (v.e < -126) {
    // Subnormal (a carry to 2^23 becomes the smallest normal, as the bits compose).
    return bitcast<f32>(sign | q);
  }
  var exp8 = u32(v.e + 127);
  if (q == 0x1000000u) {
    q = 0x800000u;
    exp8 += 1u;
  }
  if (exp8 >= 255u) { return bitcast<f32>(sign | F32_EXPONENT_BITS); }
  return bitcast<f32>(sign | (exp8 << 23u) | (q - 0x800000u));
}

// a >> n without a sticky bit.
fn u64_shr_exact(a: vec2u, n: u32) -> vec2u {
  if (n == 0u) { return a; }
  if (n >= 64u) { return vec2u(0u); }
  if (n >= 32u) { return vec2u(a.y >> (n - 32u), 0u); }
  return vec2u((a.x >> n) | (a.y << (32u - n)), a.y >> n);
}
