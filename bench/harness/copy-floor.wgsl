// Bandwidth floor of the benchmark: copies `dst.len` vec4<f32> from `src` to `dst`, i.e. reads and
// writes every byte of one tensor once, which no batch norm can beat (a forward reads x at least
// once and writes y once). Grid-stride: invocation i copies i, i + T, i + 2T, ... (T = invocations
// in the dispatch), so consecutive lanes touch consecutive 16-byte words on every step.
//
// ITEMS vec4s per invocation; the dispatch is a 2-D grid of WORKGROUP-sized groups so very large
// tensors stay under maxComputeWorkgroupsPerDimension.

override WORKGROUP: u32 = 64;
override ITEMS: u32 = 16;

struct Params {
  // Number of vec4 elements to copy.
  len: u32,
  // Invocations in the whole dispatch (T above).
  threads: u32,
  // Workgroups along x, to flatten the 2-D grid.
  groupsX: u32,
  _pad: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> src: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read_write> dst: array<vec4<f32>>;

@compute @workgroup_size(WORKGROUP)
fn copy_vec4(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lane: u32) {
  var i = (wg.y * params.groupsX + wg.x) * WORKGROUP + lane;
  for (var k = 0u; k < ITEMS; k++) {
    if (i < params.len) {
      dst[i] = src[i];
    }
    i += params.threads;
  }
}
