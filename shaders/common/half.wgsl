// Half-precision storage: float16 (IEEE 754 binary16) or bfloat16 values, two per u32 word, element
// 2w in the low 16 bits of word w (the byte order of a little-endian Uint16Array). Composed
// (src/gpu/shader-manifest.ts) into every stage with half-precision entry points; HALF_FORMAT
// (prelude: HALF_FORMAT_F16, HALF_FORMAT_BF16; TS contracts.ts) picks the format.
//
// Numerics: loads widen exactly (both formats are subsets of float32): float16 by the core
// builtin unpack2x16float, bfloat16 by a shift. Stores round once, to nearest with ties to even,
// by integer arithmetic on the float32 bits, which is what torch's c10::Half and c10::BFloat16
// conversions do (NaN: float16 keeps its sign, bfloat16 is 0x7fc0, as there). pack2x16float is
// not used for the store: WGSL leaves its rounding direction to the implementation and its result
// for a value beyond float16's range indeterminate, where torch gives ±Inf.

// HALF_FORMAT_NONE (float32 storage, read through the word view: word_index / word_value), _F16 or _BF16.
override HALF_FORMAT: u32 = 0u;

// float32 → float16 bits, round to nearest even; overflow to ±Inf, underflow to subnormals / ±0,
// NaN to the quiet NaN with its sign (c10::Half's fp16_ieee_from_fp32_value). Branch-free (every
// candidate computed, one picked by select) so the lanes of an invocation group never diverge.
fn f16_bits(v: f32) -> u32 {
  let u = bitcast<u32>(v);
  let sign = (u >> 16u) & 0x8000u;
  let a = u & 0x7fffffffu;
  // Normal result (a ≥ 2^−14): rebias the exponent (127 → 15), round the fraction to 10 bits
  // (wraps for smaller a, where it is not picked).
  let r = a - 0x38000000u;
  let normal = (r + 0xfffu + ((r >> 13u) & 1u)) >> 13u;
  // Subnormal result: the significand with its implicit bit in units of 2^−24, rounded. Below
  // 2^−25 the shift passes the significand entirely (capped at 31: q = 0, rest under half).
  let e = a >> 23u;
  let shift = min(126u - min(e, 112u), 31u);
  let m = (a & 0x7fffffu) | 0x800000u;
  let q = m >> shift;
  let rest = m & ((1u << shift) - 1u);
  let halfway = 1u << (shift - 1u);
  let subnormal = q + select(0u, 1u, (rest > halfway) | ((rest == halfway) & ((q & 1u) == 1u)));
  var bits = select(subnormal, normal, a >= 0x38800000u);
  // 65520 = 65504 + half an ulp rounds (to even) up to Inf; so does everything above.
  bits = select(bits, 0x7c00u, a >= 0x477ff000u);
  bits = select(bits, 0x7e00u, a > 0x7f800000u);
  return sign | bits;
}

// float32 → bfloat16 bits, round to nearest even (c10::BFloat16's round_to_nearest_even).
fn bf16_bits(v: f32) -> u32 {
  let u = bitcast<u32>(v);
  return select((u + 0x7fffu + ((u >> 16u) & 1u)) >> 16u, 0x7fc0u, (u & 0x7fffffffu) > 0x7f800000u);
}

// Both values of word w.
fn unpack_half2(w: u32) -> vec2f {
  if (HALF_FORMAT == HALF_FORMAT_BF16) { return vec2f(bitcast<f32>(w << 16u), bitcast<f32>(w & 0xffff0000u)); }
  return unpack2x16float(w);
}

// Two values as one word, each rounded to the format.
fn pack_half2(v: vec2f) -> u32 {
  if (HALF_FORMAT == HALF_FORMAT_BF16) { return bf16_bits(v.x) | (bf16_bits(v.y) << 16u); }
  return f16_bits(v.x) | (f16_bits(v.y) << 16u);
}

// Element i of a half tensor whose word holding it is `w` (i's parity picks the half).
fn half_at(w: u32, i: u32) -> f32 {
  let v = unpack_half2(w);
  return select(v.x, v.y, (i & 1u) == 1u);
}

// A tensor viewed as u32 words, whatever its dtype: value i is in word word_index(i), and
// word_value(that word, i) widens it exactly: the float32 itself (HALF_FORMAT_NONE), or the
// float16 / bfloat16 value in i's half. One view and one entry point serve every dtype, the
// branch folded away when the pipeline is created.
fn word_index(i: u32) -> u32 {
  return select(i >> 1u, i, HALF_FORMAT == HALF_FORMAT_NONE);
}

fn word_value(w: u32, i: u32) -> f32 {
  if (HALF_FORMAT == HALF_FORMAT_NONE) { return bitcast<f32>(w); }
  return half_at(w, i);
}

// `word` for a tensor's last word when its element count is odd: the new low half, the high half
// (padding, which may belong to the caller's buffer) kept as it was.
fn keep_padding(word: u32, old: u32) -> u32 {
  return (old & 0xffff0000u) | (word & 0xffffu);
}
