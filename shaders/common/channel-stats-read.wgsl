// Reading channelStats (layout in prelude.wgsl). Composed (src/gpu/shader-manifest.ts) into the
// shaders that declare `channelStats: array<vec4f>` and a uniform `params` with `planeStride`
// (ceil(C / 4)).

// Channel c's value in `plane`.
fn plane1(plane: u32, c: u32) -> f32 {
  return channelStats[plane * params.planeStride + (c >> 2u)][c & 3u];
}

// Channels 4·c4 .. 4·c4+3 of `plane`.
fn plane4(plane: u32, c4: u32) -> vec4f {
  return channelStats[plane * params.planeStride + c4];
}

// vec4(K, scale, shiftedBias, 0) of channel c from the packed region.
fn read_packed(c: u32) -> vec4f {
  return channelStats[CHANNEL_STATS_PLANES * params.planeStride + c];
}
