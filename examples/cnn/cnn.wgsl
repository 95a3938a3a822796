// The CNN example's own layers (examples/cnn): direct 2-D convolution, ReLU, residual add + ReLU,
// global average pooling and a linear layer, all NCHW, one invocation per output value, float32.
// Batch norm is NOT here: the example calls the library for it (or folds it into the convolutions).

struct Params {
  n: u32,        // batch
  cin: u32,      // input channels (linear: input features)
  cout: u32,     // output channels (linear: output features)
  h: u32,
  w: u32,
  k: u32,        // square kernel size (odd), stride 1, padding k / 2 ("same")
  count: u32,    // output values
  hasBias: u32,  // 1: add bias[o]
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> src: array<f32>;
@group(0) @binding(2) var<storage, read> weight: array<f32>;
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(4) var<storage, read_write> dst: array<f32>;
@group(0) @binding(5) var<storage, read> skip: array<f32>;

override WORKGROUP_SIZE: u32 = 64u;

@compute @workgroup_size(WORKGROUP_SIZE)
fn conv2d(@builtin(global_invocation_id) gid: vec3u) {
  let i = gid.x;
  if (i >= params.count) { return; }
  let w = params.w;
  let h = params.h;
  let x = i % w;
  let y = (i / w) % h;
  let o = (i / (w * h)) % params.cout;
  let b = i / (w * h * params.cout);
  let pad = i32(params.k / 2u);
  var acc = 0.0;
  if (params.hasBias == 1u) { acc = bias[o]; }
  // The kernel rows and columns that land inside the image, so the inner loops never branch.
  let k = i32(params.k);
  let ky0 = u32(max(pad - i32(y), 0));
  let ky1 = u32(min(k, i32(h) + pad - i32(y)));
  let kx0 = u32(max(pad - i32(x), 0));
  let kx1 = u32(min(k, i32(w) + pad - i32(x)));
  for (var ci = 0u; ci < params.cin; ci++) {
    let plane = (b * params.cin + ci) * h;
    let kernel = (o * params.cin + ci) * params.k;
    for (var ky = ky0; ky < ky1; ky++) {
      let row = (plane + y + ky - u32(pad)) * w + x - u32(pad);
      let krow = (kernel + ky) * params.k;
      for (var kx = kx0; kx < kx1; kx++) {
        acc += src[row + kx] * weight[krow + kx];
      }
    }
  }
  dst[i] = acc;
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn relu(@builtin(global_invocation_id) gid: vec3u) {
  let i = gid.x;
  if (i >= params.count) { return; }
  dst[i] = max(src[i], 0.0);
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn add_relu(@builtin(global_invocation_id) gid: vec3u) {
  let i = gid.x;
  if (i >= params.count) { return; }
  dst[i] = max(src[i] + skip[i], 0.0);
}

// dst[b, c] = mean over h × w of src[b, c, :, :]
@compute @workgroup_size(WORKGROUP_SIZE)
fn global_avg_pool(@builtin(global_invocation_id) gid: vec3u) {
  let i = gid.x;
  if (i >= params.count) { return; }
  let size = params.h * params.w;
  var acc = 0.0;
  for (var j = 0u; j < size; j++) { acc += src[i * size + j]; }
  dst[i] = acc / f32(size);
}

// dst[b, o] = bias[o] + Σ_j src[b, j] · weight[o, j]   (PyTorch's Linear: weight is out × in)
@compute @workgroup_size(WORKGROUP_SIZE)
fn linear(@builtin(global_invocation_id) gid: vec3u) {
  let i = gid.x;
  if (i >= params.count) { return; }
  let o = i % params.cout;
  let b = i / params.cout;
  var acc = 0.0;
  if (params.hasBias == 1u) { acc = bias[o]; }
  for (var j = 0u; j < params.cin; j++) { acc += src[b * params.cin + j] * weight[o * params.cin + j]; }
  dst[i] = acc;
}
