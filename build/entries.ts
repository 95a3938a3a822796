/**
 * The package's entry points, named once: the library build (vite.lib.config.ts) emits
 * `dist/<name>.js` for each, package.json "exports" maps `.` and `./<name>` to them, and
 * test/dist.test.ts checks that the two agree and builds a consumer of each.
 */
export const LIBRARY_ENTRIES = {
  index: 'src/index.ts',
  io: 'src/io/index.ts',
  sync: 'src/sync/index.ts',
  fold: 'src/fold/index.ts',
  node: 'src/node/index.ts',
} as const;

/** The package subpath of an entry: `.` for index, `./io` for io. */
export function subpathOf(name: keyof typeof LIBRARY_ENTRIES): string {
  return name === 'index' ? '.' : `./${name}`;
}
