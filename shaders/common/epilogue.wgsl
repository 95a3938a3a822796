// Fused epilogue: the activation (and residual add) applied where BN writes each output value,
//   y = act(bn(x) + residual)
// as cuDNN's CUDNN_BATCHNORM_OPS_BN_ACTIVATION / BN_ADD_ACTIVATION and oneDNN's fuse_norm_relu /
// fuse_norm_add_relu do. Added at load time (src/gpu/shader-sources.ts) to normalize.wgsl and both
// backward shaders, which declare their own bindings and call these pure functions. The constants are
// selected per pipeline; a plain BN pipeline keeps the defaults, under which all of this folds away.
//
// Backward (PyTorch 1.13's derivatives, aten/src/ATen/native/Activation.cpp):
//   ReLU     threshold_backward:   g · (y > 0)
//   clamp    hardtanh_backward:    g · (min < y < max)  (open interval, as in hardtanh; ReLU6 = clamp(0, 6))
//   LeakyReLU leaky_relu_backward: g · (y > 0 ? 1 : slope)  (slope ≥ 0, so y > 0 ⇔ pre-activation > 0)
// all masks taken from the saved OUTPUT y, as cuDNN does; for these the output decides the mask
// exactly as the pre-activation does. The others (smooth, or PReLU with a slope of either sign:
// not invertible from y) use the pre-activation t, recomputed from x and the forward's per-channel
// constants (activation_uses_pre_activation):
//   SiLU     silu_backward:        g · σ(t) · (1 + t · (1 − σ(t)))
//   GELU     gelu_backward 'none': g · (Φ(t) + t · φ(t))
//   GELU     gelu_backward 'tanh': g · (½(1 + tanh v) + ½t · (1 − tanh² v) · β(1 + 3κt²)),
//                                  v = β(t + κt³), β = √(2/π), κ = 0.044715
//   hardswish hardswish_backward:  g · (t < −3 ? 0 : t ≤ 3 ? t/3 + ½ : 1)
//   sigmoid  sigmoid_backward:     g · σ(t) · (1 − σ(t))
//   tanh     tanh_backward:        g · (1 − tanh² t)
//   ELU      elu_backward (is_result false): g · (t ≤ 0 ? α·exp(t) : 1)
//   PReLU    prelu_backward:       g · (t > 0 ? 1 : slope[c]);  weight: Σ g · (t > 0 ? 0 : t)
//
// WGSL lets an implementation assume no value is infinite (common/non-finite.wgsl), so no formula
// here lets exp overflow: σ and tanh are built from exp(−|t|), the cubic of GELU-tanh and the
// Gaussian of GELU are evaluated at a clamped t past which their result is already saturated, and
// ELU's exp only sees t ≤ 0. The transcendental helpers are written once, for vec4f; the
// scalar entry points (unaligned tensors only) call them on a splat and keep one lane, so each
// formula lives in one place.

// Which activation ends the pass: ACTIVATION_* of common/prelude.wgsl (TS: src/gpu/contracts.ts).
override ACTIVATION: u32 = 0u;
// true: a residual tensor is added to the normalized value before the activation.
override RESIDUAL: bool = false;

// True when the backward masks dy with the saved output (ReLU family).
fn activation_masks_from_output() -> bool {
  return ACTIVATION == ACTIVATION_RELU || ACTIVATION == ACTIVATION_CLAMP || ACTIVATION == ACTIVATION_LEAKY_RELU;
}

// True when the backward recomputes the pre-activation t (every activation but the ReLU family).
fn activation_uses_pre_activation() -> bool {
  return ACTIVATION != ACTIVATION_NONE && !activation_masks_from_output();
}

// σ(t) and σ'(t) = σ(t)(1 − σ(t)) from e = exp(−|t|) ∈ (0, 1]: no overflow for any t, and σ'
// without the cancellation of 1 − σ near σ = 1.
fn sigmoid4(t: vec4f) -> vec4f {
  let e = exp(-abs(t));
  let r = 1.0 / (1.0 + e);
  return select(e * r, r, t >= vec4f(0.0));
}

fn sigmoid_slope4(t: vec4f) -> vec4f {
  let e = exp(-abs(t));
  let r = 1.0 / (1.0 + e);
  return e * r * r;
}

// tanh from e = exp(−2|t|) (WGSL's tanh builtin may overflow through sinh / cosh on some
// implementations); 1 − tanh² = 4e / (1 + e)².
fn tanh4(t: vec4f) -> vec4f {
  let e = exp(-2.0 * abs(t));
  let m = (1.0 - e) / (1.0 + e);
  return select(-m, m, t >= vec4f(0.0));
}

fn tanh_slope4(t: vec4f) -> vec4f {
  let e = exp(-2.0 * abs(t));
  let r = 1.0 / (1.0 + e);
  return 4.0 * e * r * r;
}

// Φ(t), the standard normal CDF, through erfc(z) for z = |t|/√2 ≥ 0 (Numerical Recipes' erfcc,
// relative error < 1.2e-7 everywhere, so the lower tail keeps its relative precision). z is clamped
// at 10, where erfc < 3e-45 is already below float32's smallest subnormal scale.
fn normal_cdf4(t: vec4f) -> vec4f {
  let z = min(abs(t) * 0.70710678118654752, vec4f(10.0));
  let u = 1.0 / (1.0 + 0.5 * z);
  let poly = -1.26551223 + u * (1.00002368 + u * (0.37409196 + u * (0.09678418 + u * (-0.18628806 +
    u * (0.27886807 + u * (-1.13520398 + u * (1.48851587 + u * (-0.82215223 + u * 0.17087277))))))));
  let half_erfc = 0.5 * u * exp(poly - z * z);
  return select(1.0 - half_erfc, half_erfc, t < vec4f(0.0));
}

// φ(t) = exp(−t²/2)/√(2π); |t| clamped at 20, where exp(−200) is 0 in float32 (so t·φ(t) is 0).
fn normal_pdf4(t: vec4f) -> vec4f {
  let a = min(abs(t), vec4f(20.0));
  return 0.39894228040143268 * exp(-0.5 * a * a);
}

// GELU-tanh's σ(2v), v = β(u + κu³) at u = clamp(t, ±10): beyond, σ(2v) is 1 (t > 10) in float32,
// or below 1e-37 (t < −10) and taken as 0 so that t·σ(2v) stays 0 for any large |t|.
fn gelu_tanh_gate4(t: vec4f) -> vec4f {
  let u = clamp(t, vec4f(-10.0), vec4f(10.0));
  let s = sigmoid4(1.5957691216057308 * (u + 0.044715 * u * u * u));
  return select(s, vec4f(0.0), t < vec4f(-10.0));
}

// exp(t) − 1 for t ≤ 0 (ELU): a 4-term series near 0, where exp(t) − 1 would cancel.
fn expm1_neg4(t: vec4f) -> vec4f {
  let series = t * (1.0 + t * 0.5 * (1.0 + t * (1.0 / 3.0) * (1.0 + t * 0.25)));
  return select(exp(t) - 1.0, series, t > vec4f(-0.03125));
}

// act(t); p = (clamp min, clamp max, leaky slope or ELU alpha); w = PReLU slope per lane.
fn activate4(t: vec4f, p: vec3f, w: vec4f) -> vec4f {
  switch ACTIVATION {
    case ACTIVATION_RELU: { return max(t, vec4f(0.0)); }
    case ACTIVATION_CLAMP: { return clamp(t, vec4f(p.x), vec4f(p.y)); }
    case ACTIVATION_LEAKY_RELU: { return select(t * p.z, t, t > vec4f(0.0)); }
    case ACTIVATION_SILU: { return t * sigmoid4(t); }
    case ACTIVATION_GELU: { return select(t * normal_cdf4(t), vec4f(0.0), t < vec4f(-14.0)); }
    case ACTIVATION_GELU_TANH: { return t * gelu_tanh_gate4(t); }
    case ACTIVATION_HARDSWISH: { return t * clamp(t + 3.0, vec4f(0.0), vec4f(6.0)) / 6.0; }
    case ACTIVATION_SIGMOID: { return sigmoid4(t); }
    case ACTIVATION_TANH: { return tanh4(t); }
    // The positive branch wherever t ≤ 0 is false, NaN included: torch's ELU returns a NaN t
    // itself (its branch is x <= 0), whatever exp makes of it.
    case ACTIVATION_ELU: { return select(p.z * expm1_neg4(min(t, vec4f(0.0))), t, !(t <= vec4f(0.0))); }
    case ACTIVATION_PRELU: { return select(t * w, t, t > vec4f(0.0)); }
    default: { return t; }
  }
}

// One lane of activate4 (see the header: one formula per activation).
fn activate1(t: f32, p: vec3f, w: f32) -> f32 {
  return activate4(vec4f(t), p, vec4f(w)).x;
}

// dL/dt from dL/dy = g and the saved output y (ReLU family only).
fn activation_grad_from_output4(g: vec4f, y: vec4f, p: vec3f) -> vec4f {
  switch ACTIVATION {
    case ACTIVATION_RELU: { return select(vec4f(0.0), g, y > vec4f(0.0)); }
    case ACTIVATION_CLAMP: { return select(vec4f(0.0), g, (y > vec4f(p.x)) & (y < vec4f(p.y))); }
    case ACTIVATION_LEAKY_RELU: { return select(g * p.z, g, y > vec4f(0.0)); }
    default: { return g; }
  }
}

fn activation_grad_from_output1(g: f32, y: f32, p: vec3f) -> f32 {
  switch ACTIVATION {
    case ACTIVATION_RELU: { return select(0.0, g, y > 0.0); }
    case ACTIVATION_CLAMP: { return select(0.0, g, y > p.x && y < p.y); }
    case ACTIVATION_LEAKY_RELU: { return select(g * p.z, g, y > 0.0); }
    default: { return g; }
  }
}

// dL/dt from dL/dy = g and the pre-activation t (activation_uses_pre_activation); p and w as in
// activate4.
fn activation_grad4(g: vec4f, t: vec4f, p: vec3f, w: vec4f) -> vec4f {
  switch ACTIVATION {
    case ACTIVATION_SILU: {
      let s = sigmoid4(t);
      // 1 − σ(t) = σ(−t), formed without cancellation.
      return g * s * (1.0 + t * sigmoid4(-t));
    }
    case ACTIVATION_GELU: { return g * (normal_cdf4(t) + t * normal_pdf4(t)); }
    case ACTIVATION_GELU_TANH: {
      let u = clamp(t, vec4f(-10.0), vec4f(10.0));
      let v2 = 1.5957691216057308 * (u + 0.044715 * u * u * u);
      // ½(1 + tanh v) = σ(2v); ½(1 − tanh² v) = 2σ'(2v).
      return g * (gelu_tanh_gate4(t) + 2.0 * u * sigmoid_slope4(v2) * 0.7978845608028654 * (1.0 + 0.134145 * u * u));
    }
    case ACTIVATION_HARDSWISH: {
      return select(select(g * (t / 3.0 + 0.5), g, t > vec4f(3.0)), vec4f(0.0), t < vec4f(-3.0));
    }
    case ACTIVATION_SIGMOID: { return g * sigmoid_slope4(t); }
    case ACTIVATION_TANH: { return g * tanh_slope4(t); }
    case ACTIVATION_ELU: { return select(g * p.z * exp(min(t, vec4f(0.0))), g, !(t <= vec4f(0.0))); }
    case ACTIVATION_PRELU: { return select(g * w, g, t > vec4f(0.0)); }
    default: { return g; }
  }
}

fn activation_grad1(g: f32, t: f32, p: vec3f, w: f32) -> f32 {
  return activation_grad4(vec4f(g), vec4f(t), p, vec4f(w)).x;
}

// PReLU's slope of channel c (0 for other activations, which load nothing): channelStats plane
// PLANE_PRELU_SLOPE, which the host fills from the weight tensor by a buffer copy; a weight of
// shape [1] (FLAG_PRELU_SHARED) is one slope at channel 0 for every channel, as nn.PReLU().
fn prelu_slope(c: u32) -> f32 {
  if (ACTIVATION != ACTIVATION_PRELU) { return 0.0; }
  return plane1(PLANE_PRELU_SLOPE, select(c, 0u, (params.flags & FLAG_PRELU_SHARED) != 0u));
}

// prelu_slope of channels 4·c4 .. 4·c4 + 3.
fn prelu_slope4(c4: u32) -> vec4f {
  if (ACTIVATION != ACTIVATION_PRELU) { return vec4f(0.0); }
  if ((params.flags & FLAG_PRELU_SHARED) != 0u) { return vec4f(plane1(PLANE_PRELU_SLOPE, 0u)); }
  return plane4(PLANE_PRELU_SLOPE, c4);
}
