/**
 * Which `.wgsl` files (relative to `shaders/`) make up each shader module of the library, by id:
 * the stage file first, then the helper files it uses. Every module also gets `PRELUDE_FILE` (the
 * contracts shared with TS, see `contracts.ts`), placed right after the stage file: WGSL resolves
 * module-scope names in any order, and appending keeps Dawn's line numbers equal to the stage
 * file's. Pure data, read at build time by `build/wgsl-shaders.ts`, which inlines the composed
 * sources and their reflected layouts (the `virtual:bn-shaders` module).
 */
export const shaderManifest = {
  stats: ['stats.wgsl', 'common/lane-columns.wgsl', 'common/non-finite.wgsl', 'common/half.wgsl'],
  finalize: [
    'finalize.wgsl',
    'common/channel-stats-write.wgsl',
    'common/non-finite.wgsl',
    'common/channel-scan.wgsl',
    'common/chan-merge.wgsl',
    'common/half.wgsl',
  ],
  normalize: [
    'normalize.wgsl',
    'common/channel-stats-read.wgsl',
    'common/channel-stats-write.wgsl',
    'common/non-finite.wgsl',
    'common/epilogue.wgsl',
    'common/half.wgsl',
  ],
  // The native-f16 normalize (adapters with shader-f16): its own file first (it opens with
  // `enable f16;`), then normalize.wgsl, whose uniform, constants and helpers it reuses.
  'normalize-f16': [
    'normalize-f16.wgsl',
    'normalize.wgsl',
    'common/channel-stats-read.wgsl',
    'common/channel-stats-write.wgsl',
    'common/non-finite.wgsl',
    'common/epilogue.wgsl',
    'common/half.wgsl',
  ],
  'backward-reduce': [
    'backward-reduce.wgsl',
    'common/lane-columns.wgsl',
    'common/channel-stats-read.wgsl',
    'common/channel-stats-write.wgsl',
    'common/non-finite.wgsl',
    'common/epilogue.wgsl',
    'common/half.wgsl',
  ],
  'backward-prepare': ['backward-prepare.wgsl', 'common/channel-stats-write.wgsl', 'common/non-finite.wgsl'],
  'backward-elementwise': ['backward-elementwise.wgsl', 'common/channel-stats-read.wgsl', 'common/epilogue.wgsl', 'common/half.wgsl'],
  fold: ['fold.wgsl'],
  'sync-batch-norm': [
    'sync-batch-norm.wgsl',
    'common/channel-stats-read.wgsl',
    'common/channel-stats-write.wgsl',
    'common/non-finite.wgsl',
    'common/channel-scan.wgsl',
    'common/chan-merge.wgsl',
    'common/f64.wgsl',
  ],
  'sync-merge': ['sync-merge.wgsl', 'common/non-finite.wgsl', 'common/f64.wgsl'],
} as const satisfies Record<string, readonly [string, ...string[]]>;

/** The prelude every module gets, relative to `shaders/`. */
export const PRELUDE_FILE = 'common/prelude.wgsl';

/** The id of one WGSL module of the library. */
export type ShaderId = keyof typeof shaderManifest;

/** The files of `shader` in composition order: stage, prelude, helpers. */
export function shaderFiles(shader: ShaderId): readonly string[] {
  const [stage, ...helpers] = shaderManifest[shader];
  return [stage, PRELUDE_FILE, ...helpers];
}
