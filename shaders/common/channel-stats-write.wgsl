// Writing channelStats (layout in prelude.wgsl). Composed (src/gpu/shader-manifest.ts) into the
// shaders that declare `channelStats: array<vec4f>` read_write and a uniform `params` with
// `planeStride` (ceil(C / 4)).

fn write_plane(plane: u32, c: u32, v: f32) {
  channelStats[plane * params.planeStride + (c >> 2u)][c & 3u] = v;
}

// Channel c's entry of the packed region: vec4(K, scale, shiftedBias, 0).
fn write_packed(c: u32, k: f32, scale: f32, shiftedBias: f32) {
  channelStats[CHANNEL_STATS_PLANES * params.planeStride + c] = vec4f(k, scale, shiftedBias, 0.0);
}

// Channel c's constants as every producer writes them (finalize, normalize in evaluation,
// backward-prepare, SyncBatchNorm): planes PLANE_SHIFT .. PLANE_MEAN_OFFSET and the packed entry.
fn write_channel_constants(c: u32, k: f32, scale: f32, shiftedBias: f32, mean: f32, invstd: f32, meanOffset: f32) {
  write_plane(PLANE_SHIFT, c, k);
  write_plane(PLANE_SCALE, c, scale);
  write_plane(PLANE_SHIFTED_BIAS, c, shiftedBias);
  write_plane(PLANE_MEAN, c, mean);
  write_plane(PLANE_INVSTD, c, invstd);
  write_plane(PLANE_MEAN_OFFSET, c, meanOffset);
  write_packed(c, k, scale, shiftedBias);
}
