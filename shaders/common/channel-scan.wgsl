// One channel's special values, found by reading its values' bits. Shared by finalize.wgsl's
// rescan (a channel whose merged statistics are not finite) and sync-batch-norm.wgsl's moments
// record, so a channel holding NaN or ±Inf gets torch's statistics in both: mean NaN if it holds a
// NaN or both +Inf and −Inf, else ±Inf, and variance NaN. A partial merge cannot tell these apart
// when the channel's shift K is itself infinite, hence the scan.
//
// The including stage defines `channel_value(i: u32) -> f32`, value i of its input as float32
// (a float32 load, or a half-precision one widened), and passes the channel's view of it;
// common/non-finite.wgsl provides the bit constants.

// Value j < cols of segment r < rows of channel c sits at base + r * rowStride + c * channelStride + j
// (in elements of the input: floats, or halves; TS `channelScanView`).
struct ChannelView {
  rows: u32,
  cols: u32,
  rowStride: u32,
  channelStride: u32,
  base: u32,
}

struct SpecialValues {
  // Largest |value| as bits: ≥ F32_EXPONENT_BITS when the channel holds an Inf (equal) or a NaN (above).
  maxMagnitude: u32,
  posInf: bool,
  negInf: bool,
}

fn scan_special_values(view: ChannelView, c: u32) -> SpecialValues {
  let first = view.base + c * view.channelStride;
  var s = SpecialValues(0u, false, false);
  for (var r = 0u; r < view.rows; r++) {
    let row = first + r * view.rowStride;
    for (var j = 0u; j < view.cols; j++) {
      let u = bitcast<u32>(channel_value(row + j));
      s.maxMagnitude = max(s.maxMagnitude, u & F32_MAGNITUDE_BITS);
      s.posInf = s.posInf || u == F32_EXPONENT_BITS;
      s.negInf = s.negInf || u == F32_NEG_INF_BITS;
    }
  }
  return s;
}

fn holds_non_finite(s: SpecialValues) -> bool {
  return s.maxMagnitude >= F32_EXPONENT_BITS;
}

// torch's mean of a channel that holds a NaN or an Inf.
fn non_finite_mean(s: SpecialValues) -> f32 {
  if (s.maxMagnitude == F32_EXPONENT_BITS && s.posInf != s.negInf) { return f32_inf(s.negInf); }
  return f32_nan();
}
