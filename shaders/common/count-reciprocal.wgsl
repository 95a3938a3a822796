// The correctly rounded float32 reciprocal of a u32 count, by integer long division: WGSL's f32
// division is accurate to 2.5 ulp only, so 1.0 / f32(n) can differ between devices, and the GPU
// merge of SyncBatchNorm (sync-merge.wgsl) and the constants derived from its count
// (sync-batch-norm.wgsl) must give bits that src/sync/sync-merge.ts (recipCountF32) reproduces.

// 1 / n correctly rounded to nearest even, for n ≥ 1, by long division in u32.
fn recip_count(n: u32) -> f32 {
  let p = firstLeadingBit(n);
  let top = 1u << p;
  if (n == top) { return bitcast<f32>((127u - p) << 23u); }
  // 2^(p+1) / n in (1, 2): its integer bit is 1, remainder 2^(p+1) − n, then 23 fraction bits.
  var r = top - (n - top);
  var m = 1u;
  for (var i = 0u; i < 23u; i++) {
    // 2r ≥ n, without forming 2r (it may not fit in a u32).
    let bit = r >= n - r;
    m = (m << 1u) | select(0u, 1u, bit);
    r = select(r + r, r - (n - r), bit);
  }
  let guard = r >= n - r;
  let rest = select(r + r, r - (n - r), guard);
  if (guard && (rest != 0u || (m & 1u) == 1u)) { m += 1u; }
  // m in [2^23, 2^24]; a carry to 2^24 lands in the exponent field.
  return bitcast<f32>(((126u - p) << 23u) + (m - 0x800000u));
}
