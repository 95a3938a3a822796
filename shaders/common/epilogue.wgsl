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
// exactly as the pre-activation does. SiLU (smooth, not invertible from y) uses the pre-activation
// t, recomputed from x and the forward's per-channel constants:
//   SiLU     silu_backward:        g · σ(t) · (1 + t · (1 − σ(t)))

// Which activation ends the pass: ACTIVATION_* of common/prelude.wgsl (TS: src/gpu/contracts.ts).
override ACTIVATION: u32 = 0u;
// true: a residual tensor is added to the normalized value before the activation.
override RESIDUAL: bool = false;

// True when the backward masks dy with the saved output (ReLU family).
fn activation_masks_from_output() -> bool {
  return ACTIVATION == ACTIVATION_RELU || ACTIVATION == ACTIVATION_CLAMP || ACTIVATION == ACTIVATION_LEAKY_RELU;
}

// act(t); p = (clamp min, clamp max, leaky slope).
fn activate4(t: vec4f, p: vec3f) -> vec4f {
  switch ACTIVATION {
    case ACTIVATION_RELU: { return max(t, vec4f(0.0)); }
    case ACTIVATION_CLAMP: { return clamp(t, vec4f(p.x), vec4f(p.y)); }
    case ACTIVATION_LEAKY_RELU: { return select(t * p.z, t, t > vec4f(0.0)); }
    case ACTIVATION_SILU: { return t / (1.0 + exp(-t)); }
    default: { return t; }
  }
}

fn activate1(t: f32, p: vec3f) -> f32 {
  switch ACTIVATION {
    case ACTIVATION_RELU: { return max(t, 0.0); }
    case ACTIVATION_CLAMP: { return clamp(t, p.x, p.y); }
    case ACTIVATION_LEAKY_RELU: { return select(t * p.z, t, t > 0.0); }
    case ACTIVATION_SILU: { return t / (1.0 + exp(-t)); }
    default: { return t; }
  }
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

// dL/dt of SiLU from dL/dy = g and the pre-activation t.
fn silu_grad4(g: vec4f, t: vec4f) -> vec4f {
  let s = 1.0 / (1.0 + exp(-t));
  return g * s * (1.0 + t * (1.0 - s));
}

fn silu_grad1(g: f32, t: f32) -> f32 {
  let s = 1.0 / (1.0 + exp(-t));
  return g * s * (1.0 + t * (1.0 - s));
}
