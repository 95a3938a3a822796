// The example MLP's own layers, in plain WGSL: fully connected forward and backward, ReLU, softmax
// cross-entropy and SGD with momentum. Batch norm comes from the library (encodeForward /
// encodeBackward); everything else of a training step is here, so one step is one command encoder
// and one submit.
//
// Shapes are fixed for a run, so they are override constants (one pipeline per layer shape),
// and no uniform buffer is needed. All tensors are row-major f32: activations (BATCH, features),
// weights (OUT, IN) as in torch.nn.Linear, labels one f32 class index per sample.

override WORKGROUP_SIZE: u32 = 64u;
override BATCH: u32 = 1u;
override IN: u32 = 1u;
override OUT: u32 = 1u;
override CLASSES: u32 = 2u;
override SIZE: u32 = 1u;
override LR: f32 = 0.1;
override MOMENTUM: f32 = 0.9;

// ---- linear_forward: y[n, o] = b[o] + Σ_i x[n, i] · w[o, i]
@group(0) @binding(0) var<storage, read> fwdX: array<f32>;
@group(0) @binding(1) var<storage, read> fwdW: array<f32>;
@group(0) @binding(2) var<storage, read> fwdB: array<f32>;
@group(0) @binding(3) var<storage, read_write> fwdY: array<f32>;

@compute @workgroup_size(WORKGROUP_SIZE)
fn linear_forward(@builtin(global_invocation_id) gid: vec3u) {
  let k = gid.x;
  if (k >= BATCH * OUT) { return; }
  let n = k / OUT;
  let o = k % OUT;
  var acc = fwdB[o];
  for (var i = 0u; i < IN; i++) {
    acc += fwdX[n * IN + i] * fwdW[o * IN + i];
  }
  fwdY[k] = acc;
}

// ---- linear_backward_input: dx[n, i] = Σ_o dy[n, o] · w[o, i]
@group(0) @binding(0) var<storage, read> bwdDy: array<f32>;
@group(0) @binding(1) var<storage, read> bwdW: array<f32>;
@group(0) @binding(2) var<storage, read_write> bwdDx: array<f32>;

@compute @workgroup_size(WORKGROUP_SIZE)
fn linear_backward_input(@builtin(global_invocation_id) gid: vec3u) {
  let k = gid.x;
  if (k >= BATCH * IN) { return; }
  let n = k / IN;
  let i = k % IN;
  var acc = 0.0;
  for (var o = 0u; o < OUT; o++) {
    acc += bwdDy[n * OUT + o] * bwdW[o * IN + i];
  }
  bwdDx[k] = acc;
}

// ---- linear_backward_params: dw[o, i] = Σ_n dy[n, o] · x[n, i]; db[o] = Σ_n dy[n, o]
@group(0) @binding(0) var<storage, read> prmDy: array<f32>;
@group(0) @binding(1) var<storage, read> prmX: array<f32>;
@group(0) @binding(2) var<storage, read_write> prmDw: array<f32>;
@group(0) @binding(3) var<storage, read_write> prmDb: array<f32>;

@compute @workgroup_size(WORKGROUP_SIZE)
fn linear_backward_params(@builtin(global_invocation_id) gid: vec3u) {
  let k = gid.x;
  if (k >= OUT * (IN + 1u)) { return; }
  let o = k / (IN + 1u);
  let i = k % (IN + 1u);
  var acc = 0.0;
  if (i == IN) {
    for (var n = 0u; n < BATCH; n++) { acc += prmDy[n * OUT + o]; }
    prmDb[o] = acc;
  } else {
    for (var n = 0u; n < BATCH; n++) { acc += prmDy[n * OUT + o] * prmX[n * IN + i]; }
    prmDw[o * IN + i] = acc;
  }
}

// ---- relu_forward: a = max(z, 0)
@group(0) @binding(0) var<storage, read> reluZ: array<f32>;
@group(0) @binding(1) var<storage, read_write> reluA: array<f32>;

@compute @workgroup_size(WORKGROUP_SIZE)
fn relu_forward(@builtin(global_invocation_id) gid: vec3u) {
  let k = gid.x;
  if (k >= SIZE) { return; }
  reluA[k] = max(reluZ[k], 0.0);
}

// ---- relu_backward: dz = da where z > 0, else 0
@group(0) @binding(0) var<storage, read> reluInZ: array<f32>;
@group(0) @binding(1) var<storage, read> reluDa: array<f32>;
@group(0) @binding(2) var<storage, read_write> reluDz: array<f32>;

@compute @workgroup_size(WORKGROUP_SIZE)
fn relu_backward(@builtin(global_invocation_id) gid: vec3u) {
  let k = gid.x;
  if (k >= SIZE) { return; }
  reluDz[k] = select(0.0, reluDa[k], reluInZ[k] > 0.0);
}

// ---- softmax_cross_entropy: per sample loss and correctness, and dL/dlogits of the batch mean
// loss, (softmax − one_hot) / BATCH. Max-subtracted for stability.
@group(0) @binding(0) var<storage, read> ceLogits: array<f32>;
@group(0) @binding(1) var<storage, read> ceLabels: array<f32>;
@group(0) @binding(2) var<storage, read_write> ceDlogits: array<f32>;
@group(0) @binding(3) var<storage, read_write> cePerSample: array<vec2f>;

@compute @workgroup_size(WORKGROUP_SIZE)
fn softmax_cross_entropy(@builtin(global_invocation_id) gid: vec3u) {
  let n = gid.x;
  if (n >= BATCH) { return; }
  let base = n * CLASSES;
  let label = u32(ceLabels[n]);
  var best = 0u;
  var top = ceLogits[base];
  for (var c = 1u; c < CLASSES; c++) {
    if (ceLogits[base + c] > top) { top = ceLogits[base + c]; best = c; }
  }
  var sum = 0.0;
  for (var c = 0u; c < CLASSES; c++) { sum += exp(ceLogits[base + c] - top); }
  for (var c = 0u; c < CLASSES; c++) {
    let p = exp(ceLogits[base + c] - top) / sum;
    ceDlogits[base + c] = (p - select(0.0, 1.0, c == label)) / f32(BATCH);
  }
  let loss = log(sum) + top - ceLogits[base + label];
  cePerSample[n] = vec2f(loss, select(0.0, 1.0, best == label));
}

// ---- batch_mean: (mean loss, accuracy) of the batch, by one invocation (BATCH is small).
@group(0) @binding(0) var<storage, read> meanPerSample: array<vec2f>;
@group(0) @binding(1) var<storage, read_write> meanOut: array<f32>;

@compute @workgroup_size(1)
fn batch_mean() {
  var acc = vec2f(0.0);
  for (var n = 0u; n < BATCH; n++) { acc += meanPerSample[n]; }
  meanOut[0] = acc.x / f32(BATCH);
  meanOut[1] = acc.y / f32(BATCH);
}

// ---- sgd_momentum: v = MOMENTUM · v + g; p = p − LR · v (torch.optim.SGD's update)
@group(0) @binding(0) var<storage, read_write> sgdParam: array<f32>;
@group(0) @binding(1) var<storage, read> sgdGrad: array<f32>;
@group(0) @binding(2) var<storage, read_write> sgdVelocity: array<f32>;

@compute @workgroup_size(WORKGROUP_SIZE)
fn sgd_momentum(@builtin(global_invocation_id) gid: vec3u) {
  let k = gid.x;
  if (k >= SIZE) { return; }
  let v = MOMENTUM * sgdVelocity[k] + sgdGrad[k];
  sgdVelocity[k] = v;
  sgdParam[k] -= LR * v;
}
