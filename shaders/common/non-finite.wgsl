// IEEE-754 special values for the per-channel code, by bit pattern. WGSL lets an implementation
// assume that no value is NaN or infinite: an operation that overflows or meets a NaN or an
// infinity may yield an indeterminate value, and comparisons, min, max and clamp may ignore NaN
// (WGSL spec, "Floating Point Evaluation"). PyTorch semantics need NaN and Inf to propagate, so
// the per-channel stages (finalize, evaluation constants, backward_prepare) test bits and build
// special values from bits, and do the few operations that can meet them through the helpers
// below. Per-element loops never call these: there a NaN or Inf flows through ordinary hardware
// arithmetic, and the per-channel stage that follows decides from the bits what the channel gets.

const F32_EXPONENT_BITS: u32 = 0x7f800000u;  // also the bits of +Inf
const F32_MAGNITUDE_BITS: u32 = 0x7fffffffu;
const F32_SIGN_BIT: u32 = 0x80000000u;
const F32_NEG_INF_BITS: u32 = 0xff800000u;
const F32_QUIET_NAN_BITS: u32 = 0x7fc00000u;
// Bits of the largest finite float32 halved: |a/2 + b/2| above it means a + b overflows.
const F32_HALF_MAX_BITS: u32 = 0x7effffffu;

fn f32_nan() -> f32 {
  // Through a `let`: bitcast of a constant is a const-expression, and WGSL rejects a constant NaN.
  let bits = F32_QUIET_NAN_BITS;
  return bitcast<f32>(bits);
}

fn f32_inf(negative: bool) -> f32 {
  return bitcast<f32>(select(F32_EXPONENT_BITS, F32_NEG_INF_BITS, negative));
}

fn is_finite(v: f32) -> bool {
  return (bitcast<u32>(v) & F32_EXPONENT_BITS) != F32_EXPONENT_BITS;
}

fn is_nan(v: f32) -> bool {
  return (bitcast<u32>(v) & F32_MAGNITUDE_BITS) > F32_EXPONENT_BITS;
}

fn is_inf(v: f32) -> bool {
  return (bitcast<u32>(v) & F32_MAGNITUDE_BITS) == F32_EXPONENT_BITS;
}

fn is_zero(v: f32) -> bool {
  return (bitcast<u32>(v) & F32_MAGNITUDE_BITS) == 0u;
}

fn sign_bit(v: f32) -> bool {
  return (bitcast<u32>(v) & F32_SIGN_BIT) != 0u;
}

// Finite v · 2^e, with an explicit ±Inf where float32 overflows (ldexp is indeterminate there,
// and for e > 128 even when the result would fit).
fn scale_pow2(v: f32, e: i32) -> f32 {
  if (is_zero(v)) { return v; }
  let parts = frexp(v);  // v = fract · 2^exp, 0.5 ≤ |fract| < 1
  let total = parts.exp + e;
  if (total > 128) { return f32_inf(sign_bit(v)); }
  return ldexp(parts.fract, max(total, -160));
}

// a · b with IEEE-754 results for NaN, Inf and overflow.
fn ieee_mul(a: f32, b: f32) -> f32 {
  if (is_nan(a) || is_nan(b)) { return f32_nan(); }
  if (is_inf(a) || is_inf(b)) {
    if (is_zero(a) || is_zero(b)) { return f32_nan(); }
    return f32_inf(sign_bit(a) != sign_bit(b));
  }
  let fa = frexp(a);
  let fb = frexp(b);
  return scale_pow2(fa.fract * fb.fract, fa.exp + fb.exp);
}

// a + b with IEEE-754 results for NaN, Inf and overflow.
fn ieee_add(a: f32, b: f32) -> f32 {
  if (is_nan(a) || is_nan(b)) { return f32_nan(); }
  if (is_inf(a)) {
    if (is_inf(b) && sign_bit(a) != sign_bit(b)) { return f32_nan(); }
    return a;
  }
  if (is_inf(b)) { return b; }
  let half = a * 0.5 + b * 0.5;
  if ((bitcast<u32>(half) & F32_MAGNITUDE_BITS) > F32_HALF_MAX_BITS) { return f32_inf(sign_bit(half)); }
  return a + b;
}

// 1 / sqrt(variance + eps) as IEEE-754 gives it: NaN for a NaN or negative sum, 0 for +Inf,
// ±Inf for ±0.
fn invstd_of(variance: f32, eps: f32) -> f32 {
  let s = ieee_add(variance, eps);
  if (is_nan(s) || (sign_bit(s) && !is_zero(s))) { return f32_nan(); }
  if (is_inf(s)) { return 0.0; }
  if (is_zero(s)) { return f32_inf(sign_bit(s)); }
  return 1.0 / sqrt(s);
}

// running ← (1 − factor) · running + factor · batch, as PyTorch computes it (0 · Inf is NaN).
fn mix_running(running: f32, factor: f32, batch: f32) -> f32 {
  return ieee_add(ieee_mul(1.0 - factor, running), ieee_mul(factor, batch));
}

// Drops the rounding residue of a cancelling difference (a negative finite value) to 0, keeping
// NaN and ±Inf: max(v, 0) could turn a NaN into 0.
fn drop_negative4(v: vec4f) -> vec4f {
  let u = bitcast<vec4u>(v);
  return select(v, vec4f(0.0), (u > vec4u(F32_SIGN_BIT)) & (u < vec4u(F32_NEG_INF_BITS)));
}
