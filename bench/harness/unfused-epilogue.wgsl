// The unfused baseline of the epilogue benchmark rows: the separate elementwise passes a framework
// runs after batch norm when nothing is fused (PyTorch eager: `relu(bn(x))`, `relu(bn(x) + z)`,
// and ReLU's backward `threshold_backward(dy, y)`). Each is one read (two for add and the
// backward) and one write per element, vec4 at a time, with the copy floor's two access patterns
// (copy-floor.wgsl): grid-stride on GPUs, ITEMS contiguous vec4s per invocation on fallback adapters.

override WORKGROUP: u32 = 64;
override ITEMS: u32 = 16;
override BLOCKED: bool = false;

struct Params {
  len: u32,     // vec4 elements
  threads: u32, // invocations in the dispatch
  groupsX: u32, // workgroups along x of the 2-D grid
  _pad: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> a: array<vec4f>;
@group(0) @binding(2) var<storage, read> b: array<vec4f>;
@group(0) @binding(3) var<storage, read_write> dst: array<vec4f>;

// [first, end, step] of the elements invocation i handles.
fn span(wid: vec3u, lid: u32) -> vec3u {
  let i = (wid.x + wid.y * params.groupsX) * WORKGROUP + lid;
  if (BLOCKED) {
    let first = i * ITEMS;
    return vec3u(first, min(first + ITEMS, params.len), 1u);
  }
  return vec3u(i, params.len, params.threads);
}

// dst = max(a, 0)
@compute @workgroup_size(WORKGROUP)
fn relu(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) lid: u32) {
  let s = span(wid, lid);
  for (var j = s.x; j < s.y; j += s.z) { dst[j] = max(a[j], vec4f(0.0)); }
}

// dst = a + b
@compute @workgroup_size(WORKGROUP)
fn add(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) lid: u32) {
  let s = span(wid, lid);
  for (var j = s.x; j < s.y; j += s.z) { dst[j] = a[j] + b[j]; }
}

// ReLU's backward from its output: dst = b > 0 ? a : 0 with a = dy, b = y.
@compute @workgroup_size(WORKGROUP)
fn relu_backward(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) lid: u32) {
  let s = span(wid, lid);
  for (var j = s.x; j < s.y; j += s.z) { dst[j] = select(vec4f(0.0), a[j], b[j] > vec4f(0.0)); }
}
