/**
 * The built library for the tests that use it as a user would (browser.test.ts, dist.test.ts).
 * `npm test` builds before vitest; a bare `npx vitest run` builds here if dist/ is missing.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const REPO_ROOT: string = fileURLToPath(new URL('../..', import.meta.url));
export const DIST_JS: string = join(REPO_ROOT, 'dist', 'index.js');
export const DIST_DTS: string = join(REPO_ROOT, 'dist', 'index.d.ts');

function newestMtime(dir: string): number {
  let newest = 0;
  if (!existsSync(dir)) return newest;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, entry.name);
    newest = Math.max(newest, entry.isDirectory() ? newestMtime(p) : statSync(p).mtimeMs);
  }
  return newest;
}

/**
 * Runs `npm run build` if dist/index.js or dist/index.d.ts is missing. A dist older than src/ or
 * shaders/ is only reported, not rebuilt: another process may be using it right now.
 */
export function ensureDist(): void {
  if (!existsSync(DIST_JS) || !existsSync(DIST_DTS)) {
    const r = spawnSync('npm', ['run', 'build'], { cwd: REPO_ROOT, encoding: 'utf8', timeout: 300_000 });
    if (r.error || r.status !== 0) {
      throw new Error(`npm run build failed (${r.error?.message ?? `exit ${String(r.status)}`}):\n${r.stdout}\n${r.stderr}`);
    }
    return;
  }
  const built = statSync(DIST_JS).mtimeMs;
  const sources = Math.max(newestMtime(join(REPO_ROOT, 'src')), newestMtime(join(REPO_ROOT, 'shaders')));
  if (sources > built) console.warn('[dist] dist/index.js is older than src/ or shaders/; run `npm run build` to test the current code');
}
