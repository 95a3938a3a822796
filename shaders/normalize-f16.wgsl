// The normalize stage for float16 tensors in native `f16` (adapters with the `shader-f16`
// feature; the host picks this module only when the device has it, src/gpu/features.ts).
// Composed (src/gpu/shader-manifest.ts) with normalize.wgsl, whose uniform, constants, running-
// statistics path and epilogue it reuses: only the storage view differs. x, y and the residual are
// array<vec2<f16>>, walked by pairs exactly as normalize_cf2h / normalize_cl2h walk their u32 words
// (even rows only; odd shapes keep normalize_anyh), so one invocation owns both halves of a word.
//
// Numerics: loads widen exactly; the arithmetic is normalize.wgsl's float32; the store is the
// hardware's f32 → f16 conversion, round to nearest on the GPUs that expose shader-f16, where WGSL
// leaves the result of a value beyond float16's range to the implementation (the packed path
// gives ±Inf, as torch). The packed path (HALF_FORMAT_F16) is this one's oracle.
enable f16;

@group(0) @binding(1) var<storage, read> xF16: array<vec2<f16>>;
@group(0) @binding(2) var<storage, read_write> yF16: array<vec2<f16>>;
@group(0) @binding(8) var<storage, read> residualF16: array<vec2<f16>>;

// normalize_word in native f16: pair w of y from pair w of x (and of the residual).
fn normalize_pair(w: u32, k0: vec4f, k1: vec4f) -> vec2<f16> {
  let v = vec2f(xF16[params.xBase + w]);
  var t = vec2f(fma(v.x - k0.x, k0.y, k0.z), fma(v.y - k1.x, k1.y, k1.z));
  if (ACTIVATION != ACTIVATION_NONE || RESIDUAL) {
    if (RESIDUAL) { t += vec2f(residualF16[params.residualBase + w]); }
    let p = vec3f(params.activationMin, params.activationMax, params.activationSlope);
    t = activate4(vec4f(t, 0.0, 0.0), p, vec4f(k0.w, k1.w, 0.0, 0.0)).xy;
  }
  return vec2<f16>(t);
}

// Channels-first with even spatial: normalize_cf2h's walks.
@compute @workgroup_size(WORKGROUP_SIZE)
fn normalize_cf2n(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wid: vec3u,
                  @builtin(num_workgroups) nwg: vec3u) {
  let i = invocation(wid, nwg, lid);
  record_running(i);
  if (CONTIGUOUS) {
    let row = i / params.blocksPerRow;
    if (row >= params.rows) { return; }
    let k = packed(row % params.channels);
    let rowStart = row * params.cols;
    let start = rowStart + (i - row * params.blocksPerRow) * params.runLength;
    let end = min(start + params.runLength, rowStart + params.cols);
    for (var j = start; j < end; j++) {
      yF16[params.yBase + j] = normalize_pair(j, k, k);
    }
    return;
  }
  if (i >= params.lanes * params.cols) { return; }
  var c = (i / params.cols) % params.channels;
  var k = packed(c);
  let step = params.lanes * params.cols;
  let total = params.rows * params.cols;
  if (params.laneChannelStep == 0u) {
    for (var j = i; j < total; j += step) {
      yF16[params.yBase + j] = normalize_pair(j, k, k);
    }
    return;
  }
  for (var j = i; j < total; j += step) {
    yF16[params.yBase + j] = normalize_pair(j, k, k);
    c += params.laneChannelStep;
    if (c >= params.channels) { c -= params.channels; }
    k = packed(c);
  }
}

// Channels-last with even C: pair column col holds channels 2·col and 2·col + 1.
@compute @workgroup_size(WORKGROUP_SIZE)
fn normalize_cl2n(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wid: vec3u,
                  @builtin(num_workgroups) nwg: vec3u) {
  let i = invocation(wid, nwg, lid);
  record_running(i);
  if (i >= params.lanes * params.cols) { return; }
  let col = i % params.cols;
  let k0 = packed(2u * col);
  let k1 = packed(2u * col + 1u);
  let step = params.lanes * params.cols;
  let total = params.rows * params.cols;
  for (var j = i; j < total; j += step) {
    yF16[params.yBase + j] = normalize_pair(j, k0, k1);
  }
}
