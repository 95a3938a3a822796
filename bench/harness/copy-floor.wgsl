// Bandwidth floor of the benchmark: copies `params.len` vec4<f32> from `src` to `dst`, i.e. reads
// and writes every byte of one tensor once, which no batch norm can beat (a forward reads x at
// least once and writes y once). Two standard access patterns; the harness times both on the
// device at hand and uses the faster as the floor:
//
// - copy_strided: grid-stride. Invocation i copies i, i + T, i + 2T, ... (T = invocations in the
//   dispatch), so consecutive lanes touch consecutive 16-byte words: coalesced on real GPUs.
// - copy_blocked: invocation i copies the ITEMS contiguous vec4s starting at i·ITEMS, which suits
//   CPU-style implementations such as SwiftShader, where a lane is a loop iteration.
//
// The dispatch is a 2-D grid of WORKGROUP-sized groups (flattened with params.groupsX) so large
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

fn invocation(wg: vec3<u32>, lane: u32) -> u32 {
  return (wg.y * params.groupsX + wg.x) * WORKGROUP + lane;
}

@compute @workgroup_size(WORKGROUP)
fn copy_strided(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lane: u32) {
  var i = invocation(wg, lane);
  for (var k = 0u; k < ITEMS; k++) {
    if (i < params.len) {
      dst[i] = src[i];
    }
    i += params.threads;
  }
}

@compute @workgroup_size(WORKGROUP)
fn copy_blocked(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lane: u32) {
  let start = invocation(wg, lane) * ITEMS;
  for (var k = 0u; k < ITEMS; k++) {
    let i = start + k;
    if (i < params.len) {
      dst[i] = src[i];
    }
  }
}
