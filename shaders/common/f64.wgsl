// IEEE-754 binary64 arithmetic emulated in u32 (WGSL has no f64): addition, multiplication,
// division and square root with round to nearest, ties to even (guard, round and sticky bits, as
// the textbook units), conversions from float32 and u32 (exact) and to float32 (rounded the same
// way, into float32's subnormal range and to ±Inf on overflow, as a Float32Array store rounds),
// and the bits. It lets SyncBatchNorm's GPU merge (sync-merge.wgsl) and the constants derived
// from it (sync-batch-norm.wgsl) give the bits of the host's float64 code in src/sync/ on every
// device.
//
// Scope: finite operands and results in binary64's normal range (or zero). Values derived from
// float32 data and u32 counts stay there (|v| < 2^300, nonzero |v| > 2^-600), so there are no
// float64 subnormals, overflows, infinities or NaNs here; callers handle ±Inf and NaN by flags.

// High words of binary64 special values (the low word is 0).
const F64_INF_HI: u32 = 0x7ff00000u;
const F64_NEG_INF_HI: u32 = 0xfff00000u;
const F64_QUIET_NAN_HI: u32 = 0x7ff80000u;

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
  return f64_round(big.negative, e, m);
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

// ------------------------------------------------------------------ multiply, divide, sqrt
// For SyncBatchNorm's moments merge (mergeMoments' Chan fold) and the constants derived from it.
// Same scope: finite normal operands and results (values derived from float32 data and counts
// below 2^32 stay far inside binary64's range), zeros handled.

fn f64_is_zero(a: F64) -> bool {
  return a.m.x == 0u && a.m.y == 0u;
}

fn f64_neg(a: F64) -> F64 {
  return F64(!a.negative, a.e, a.m);
}

// A u32 as an F64 (exact).
fn f64_from_u32(n: u32) -> F64 {
  if (n == 0u) { return F64(false, 0, vec2u(0u)); }
  let p = firstLeadingBit(n);
  return F64(false, i32(p), u64_shl(vec2u(n, 0u), 52u - p));
}

// Rounds a mantissa with its leading bit at bit 55 (53 bits + guard, round, sticky) to 53 bits.
fn f64_round(negative: bool, e: i32, m56: vec2u) -> F64 {
  let grs = m56.x & 7u;
  var m = u64_shr_exact(m56, 3u);
  var exponent = e;
  if (grs > 4u || (grs == 4u && (m.x & 1u) == 1u)) {
    m = u64_add(m, vec2u(1u, 0u));
    if ((m.y & 0x200000u) != 0u) {
      m = u64_shr_exact(m, 1u);
      exponent += 1;
    }
  }
  return F64(negative, exponent, m);
}

// a · b, rounded to nearest even.
fn f64_mul(a: F64, b: F64) -> F64 {
  let negative = a.negative != b.negative;
  if (f64_is_zero(a) || f64_is_zero(b)) { return F64(negative, 0, vec2u(0u)); }
  // 16-bit limbs of both 53-bit mantissas; the 106-bit product in 16-bit limbs.
  let la = array<u32, 4>(a.m.x & 0xffffu, a.m.x >> 16u, a.m.y & 0xffffu, a.m.y >> 16u);
  let lb = array<u32, 4>(b.m.x & 0xffffu, b.m.x >> 16u, b.m.y & 0xffffu, b.m.y >> 16u);
  var p = array<u32, 8>(0u, 0u, 0u, 0u, 0u, 0u, 0u, 0u);
  for (var i = 0u; i < 4u; i++) {
    for (var j = 0u; j < 4u; j++) {
      let q = la[i] * lb[j];
      p[i + j] += q & 0xffffu;
      p[i + j + 1u] += q >> 16u;
    }
  }
  for (var k = 0u; k < 7u; k++) {
    p[k + 1u] += p[k] >> 16u;
    p[k] &= 0xffffu;
  }
  // 32-bit words w0 (lowest) .. w3.
  let w0 = p[0] | (p[1] << 16u);
  let w1 = p[2] | (p[3] << 16u);
  let w2 = p[4] | (p[5] << 16u);
  let w3 = p[6] | (p[7] << 16u);
  // The product is in [2^104, 2^106): its leading bit is bit 104 or 105 (bit 8 or 9 of w3).
  let top = (w3 & 0x200u) != 0u;
  // Keep 56 bits with the leading one at bit 55: shift right by 49 or 50, sticky for the rest.
  let shift = select(49u, 50u, top);
  // Bits [shift, shift + 56) of the 128-bit w3:w2:w1:w0; shift is in [49, 50], so they come from
  // w1 (from bit shift − 32), w2 and w3.
  let s = shift - 32u;
  let lo = (w1 >> s) | (w2 << (32u - s));
  let hi = (w2 >> s) | (w3 << (32u - s));
  let lost = w0 != 0u || (w1 & ((1u << s) - 1u)) != 0u;
  let m56 = vec2u(lo | select(0u, 1u, lost), hi);
  let e = a.e + b.e + select(0, 1, top);
  return f64_round(negative, e, m56);
}

// a / b for b ≠ 0, rounded to nearest even.
fn f64_div(a: F64, b: F64) -> F64 {
  let negative = a.negative != b.negative;
  if (f64_is_zero(a)) { return F64(negative, 0, vec2u(0u)); }
  // Quotient of the mantissas in [0.5, 2): 56 quotient bits with the leading one at bit 55 or 54.
  var r = a.m;
  var e = a.e - b.e;
  if (u64_less(r, b.m)) {
    r = u64_shl(r, 1u);
    e -= 1;
  }
  // Now 1 ≤ r / b.m < 2: the integer bit, then 28 radix-4 digits (56 fraction bits), r < b.m
  // throughout (4·r < 2^55 fits), so 57 quotient bits with the leading one at bit 56.
  r = u64_sub(r, b.m);
  var q = vec2u(1u, 0u);
  let b2 = u64_shl(b.m, 1u);
  let b3 = u64_add(b2, b.m);
  for (var i = 0u; i < 28u; i++) {
    r = u64_shl(r, 2u);
    q = u64_shl(q, 2u);
    if (!u64_less(r, b2)) {
      if (!u64_less(r, b3)) {
        r = u64_sub(r, b3);
        q.x |= 3u;
      } else {
        r = u64_sub(r, b2);
        q.x |= 2u;
      }
    } else if (!u64_less(r, b.m)) {
      r = u64_sub(r, b.m);
      q.x |= 1u;
    }
  }
  // Down to 56 bits (leading one at 55); the dropped bit and the remainder are sticky.
  q = u64_shr_sticky(q, 1u);
  q.x |= select(0u, 1u, r.x != 0u || r.y != 0u);
  return f64_round(negative, e, q);
}

// sqrt(a) for a ≥ 0, rounded to nearest (a square root is never exactly halfway).
fn f64_sqrt(a: F64) -> F64 {
  if (f64_is_zero(a)) { return a; }
  // a = m · 2^(e − 52); make the exponent even: a = M · 2^(2k) with M = m · 2^(e − 52 − 2k).
  // Root digit by digit: radicand R = m · 2^t (t = 58 or 59 so that 2k is even and the root has
  // 56 bits: leading bit at 55), root = floor(sqrt(R)), sticky from the remainder.
  let odd = (a.e & 1) != 0;
  let t = select(58u, 59u, odd);
  // R = m · 2^t has 53 + t bits (111 or 112): as four words (w0 = 0), read two bits at a time
  // from bit 111 down (an even position and the next share a word).
  let up = t - 32u;
  let words = array<u32, 4>(0u, a.m.x << up, (a.m.y << up) | (a.m.x >> (32u - up)), a.m.y >> (32u - up));
  var root = vec2u(0u);
  var rem = vec2u(0u);
  for (var i = 0u; i < 56u; i++) {
    let pos = 2u * (55u - i);
    let two = (words[pos / 32u] >> (pos % 32u)) & 3u;
    rem = u64_add(u64_shl(rem, 2u), vec2u(two, 0u));
    let trial = u64_add(u64_shl(root, 2u), vec2u(1u, 0u));
    root = u64_shl(root, 1u);
    if (!u64_less(rem, trial)) {
      rem = u64_sub(rem, trial);
      root.x |= 1u;
    }
  }
  root.x |= select(0u, 1u, rem.x != 0u || rem.y != 0u);
  // sqrt(a) = root · 2^((e − 52 − t) / 2); root has its leading bit at 55, i.e. value
  // root · 2^-55 ∈ [1, 2) times 2^(55 + (e − 52 − t) / 2).
  let e = 55 + (a.e - 52 - i32(t)) / 2;
  return f64_round(false, e, root);
}

// Total order key of an F64 (as the IEEE total order of its bits), for canonical sorting.
fn f64_order_key(a: F64) -> vec2u {
  if (f64_is_zero(a)) { return select(vec2u(0u, 0x80000000u), vec2u(0xffffffffu, 0x7fffffffu), a.negative); }
  let bits = f64_bits(a);
  if (a.negative) { return vec2u(~bits.x, ~bits.y); }
  return vec2u(bits.x, bits.y | 0x80000000u);
}

// The binary64 bits (lo, hi) of a normal or zero F64.
fn f64_bits(a: F64) -> vec2u {
  let sign = select(0u, 0x80000000u, a.negative);
  if (f64_is_zero(a)) { return vec2u(0u, sign); }
  let exp11 = u32(a.e + 1023);
  return vec2u(a.m.x, sign | (exp11 << 20u) | (a.m.y & 0xfffffu));
}

fn f64_from_bits(b: vec2u) -> F64 {
  let negative = (b.y & 0x80000000u) != 0u;
  let exp11 = (b.y >> 20u) & 0x7ffu;
  if (exp11 == 0u) { return F64(negative, 0, vec2u(0u)); }
  return F64(negative, i32(exp11) - 1023, vec2u(b.x, (b.y & 0xfffffu) | 0x100000u));
}
