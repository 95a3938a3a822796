/** Deterministic data shared by the workers and the main thread's single-process check. */

/** mulberry32: a small seeded PRNG. */
export function rng(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function gaussian(next) {
  const u = Math.max(next(), 1e-12);
  return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * next());
}

/** Shard `rank`'s input and upstream gradient at `step`: (N_rank, C, H, W), channels-first. */
export function shardData(rank, step, n, channels, hw) {
  const next = rng(1000 * step + rank + 1);
  const size = n * channels * hw * hw;
  const per = hw * hw;
  const x = Float32Array.from({ length: size }, (_, i) => 3 + (Math.floor(i / per) % channels) + 2 * gaussian(next));
  const dy = Float32Array.from({ length: size }, () => gaussian(next));
  return { x, dy };
}
