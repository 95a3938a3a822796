// Chan, Golub & LeVeque's pairwise merge of one channel's stats.wgsl partials, exactly as PyTorch's
// CUDA batch norm merges per-thread Welford states: n = na + nb; d = mb − ma; mean = ma + d·nb/n;
// M2 = M2a + M2b + d²·na·nb/n. Shared by finalize.wgsl (the forward) and sync-batch-norm.wgsl
// (SyncBatchNorm's moments record), so both see one channel's statistics identically.
//
// The including stage binds `partials: array<vec4f>`, stats.wgsl's records
// vec4(bitcast<f32>(count), mean − K, M2, K), `lanes` of them per channel from `first`.

// A channel's merged statistics: the shift K (its lane 0's), mean − K, M2 and the count.
struct Merged {
  k: f32,
  meanOffset: f32,
  m2: f32,
  n: u32,
}

fn chan_merge(first: u32, lanes: u32) -> Merged {
  var n = 0u;
  var mean = 0.0;
  var m2 = 0.0;
  for (var p = 0u; p < lanes; p++) {
    let part = partials[first + p];
    let nb = bitcast<u32>(part.x);
    if (nb == 0u) { continue; }
    let total = n + nb;
    let fb = f32(nb) / f32(total);
    let d = part.y - mean;
    mean += d * fb;
    m2 += part.z + d * d * f32(n) * fb;
    n = total;
  }
  // Partial M2s are ≥ 0 (stats.wgsl drops negative rounding) and the merge only adds, so M2 needs
  // no clamp (which would also turn a NaN into 0).
  return Merged(partials[first].w, mean, m2, n);
}
