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
// |v| < 2^60: a sum or product of two such values is far inside float32's range.
const F32_MODERATE_BITS: u32 = 0x5d800000u;
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

// Every |v| below 2^60 (so none is NaN or Inf): sums and products of two such values are far
// inside float32's range, so plain arithmetic on them is exact IEEE-754.
fn moderate4(v: vec4f) -> bool {
  return all((bitcast<vec4u>(v) & vec4u(F32_MAGNITUDE_BITS)) < vec4u(F32_MODERATE_BITS));
}

// Finite v · 2^e per component, with an explicit ±Inf where float32 overflows (ldexp is
// indeterminate there, and for e > 128 even when the result would fit).
fn scale_pow2_4(v: vec4f, e: vec4i) -> vec4f {
  let parts = frexp(v);  // v = fract · 2^exp, 0.5 ≤ |fract| < 1 (0 for 0)
  let total = parts.exp + e;
  let negative = (bitcast<vec4u>(v) & vec4u(F32_SIGN_BIT)) != vec4u(0u);
  let zero = (bitcast<vec4u>(v) & vec4u(F32_MAGNITUDE_BITS)) == vec4u(0u);
  return select(select(ldexp(parts.fract, max(total, vec4i(-160))), inf4(negative), total > vec4i(128)), v, zero);
}

// Four a · b at once, with IEEE-754 results for NaN, Inf and overflow (one inlined body serves
// every product of a stage, which keeps the per-channel code small on software adapters).
fn ieee_mul4(a: vec4f, b: vec4f) -> vec4f {
  if (moderate4(a) && moderate4(b)) { return a * b; }
  let ua = bitcast<vec4u>(a) & vec4u(F32_MAGNITUDE_BITS);
  let ub = bitcast<vec4u>(b) & vec4u(F32_MAGNITUDE_BITS);
  let negative = ((bitcast<vec4u>(a) ^ bitcast<vec4u>(b)) & vec4u(F32_SIGN_BIT)) != vec4u(0u);
  let fa = frexp(a);
  let fb = frexp(b);
  let total = fa.exp + fb.exp;
  // Finite operands: the exact product of the fractions, rescaled, or ±Inf past float32's range.
  var r = select(ldexp(fa.fract * fb.fract, max(total, vec4i(-160))), inf4(negative), total > vec4i(128));
  let zero = (ua == vec4u(0u)) | (ub == vec4u(0u));
  let infinite = (ua == vec4u(F32_EXPONENT_BITS)) | (ub == vec4u(F32_EXPONENT_BITS));
  r = select(r, select(inf4(negative), nan4(), zero), infinite);
  r = select(r, vec4f(0.0), zero & !infinite);
  return select(r, nan4(), (ua > vec4u(F32_EXPONENT_BITS)) | (ub > vec4u(F32_EXPONENT_BITS)));
}

// Four a + b at once, with IEEE-754 results for NaN, Inf and overflow.
fn ieee_add4(a: vec4f, b: vec4f) -> vec4f {
  if (moderate4(a) && moderate4(b)) { return a + b; }
  let ua = bitcast<vec4u>(a) & vec4u(F32_MAGNITUDE_BITS);
  let ub = bitcast<vec4u>(b) & vec4u(F32_MAGNITUDE_BITS);
  let infA = ua == vec4u(F32_EXPONENT_BITS);
  let infB = ub == vec4u(F32_EXPONENT_BITS);
  let half = a * 0.5 + b * 0.5;
  let halfBits = bitcast<vec4u>(half);
  let overflow = (halfBits & vec4u(F32_MAGNITUDE_BITS)) > vec4u(F32_HALF_MAX_BITS);
  var r = select(a + b, inf4((halfBits & vec4u(F32_SIGN_BIT)) != vec4u(0u)), overflow);
  r = select(r, b, infB);
  r = select(r, a, infA);
  let opposite = ((bitcast<vec4u>(a) ^ bitcast<vec4u>(b)) & vec4u(F32_SIGN_BIT)) != vec4u(0u);
  let nan = (ua > vec4u(F32_EXPONENT_BITS)) | (ub > vec4u(F32_EXPONENT_BITS)) | (infA & infB & opposite);
  return select(r, nan4(), nan);
}

fn nan4() -> vec4f {
  return vec4f(f32_nan());
}

fn inf4(negative: vec4<bool>) -> vec4f {
  return bitcast<vec4f>(select(vec4u(F32_EXPONENT_BITS), vec4u(F32_NEG_INF_BITS), negative));
}

fn ieee_add(a: f32, b: f32) -> f32 {
  return ieee_add4(vec4f(a), vec4f(b)).x;
}

// 1 / sqrt(s) for s = variance + eps as IEEE-754 gives it: NaN for a NaN or negative s, 0 for
// +Inf, ±Inf for ±0. Branch-free (selects on the bits), so it is cheap enough for the elementwise
// stages that derive their constants per invocation.
fn invstd_of_sum(s: f32) -> f32 {
  let u = bitcast<u32>(s);
  let magnitude = u & F32_MAGNITUDE_BITS;
  var r = select(1.0 / sqrt(s), f32_inf(u != magnitude), magnitude == 0u);
  r = select(r, 0.0, u == F32_EXPONENT_BITS);
  return select(r, f32_nan(), magnitude > F32_EXPONENT_BITS || (u != magnitude && magnitude != 0u));
}

// 1 / sqrt(variance + eps), IEEE-754 (see invstd_of_sum).
fn invstd_of(variance: f32, eps: f32) -> f32 {
  return invstd_of_sum(ieee_add(variance, eps));
}

// Drops the rounding residue of a cancelling difference (a negative finite value) to 0, keeping
// NaN and ±Inf: max(v, 0) could turn a NaN into 0.
fn drop_negative4(v: vec4f) -> vec4f {
  let u = bitcast<vec4u>(v);
  return select(v, vec4f(0.0), (u > vec4u(F32_SIGN_BIT)) & (u < vec4u(F32_NEG_INF_BITS)));
}
