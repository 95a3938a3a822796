#!/usr/bin/env node
/**
 * `npm start`: builds the benchmark page (index.html → dist-bench/ with vite.config.ts), serves it
 * on http://127.0.0.1:<port>, drives it in headless Debian Chromium (playwright-core, WebGPU on
 * SwiftShader), relays the page's progress to this terminal, then writes
 *
 *   bench/results/latest.json     { meta, rows, targets }    (+ a timestamped copy)
 *   bench/results/latest.png      screenshot of the page's charts (+ a timestamped copy)
 *
 * and prints the table and the target checklist. Exits 1 only if the page failed to produce a
 * result; missed targets are reported, never fatal (benchmarks do not fail on time).
 *
 * Options (also as URL parameters of the page): --samples N, --target MS (per GPU sample),
 * --full (every case; the default is the main rows, a few minutes), --quick (the default, kept as
 * a name), --impls a,b,c (the floors always run), --port P.
 */
import { copyFile, mkdir, writeFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { startStaticServer } from '../scripts/serve-static.mjs';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const OUT_DIR = join(ROOT, 'dist-bench');
const RESULTS = join(ROOT, 'bench', 'results');
const started = performance.now();

function parseArgs(argv) {
  const args = { query: new URLSearchParams(), port: 0 };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const next = () => {
      const v = argv[++i];
      if (v === undefined) throw new Error(`${a} needs a value`);
      return v;
    };
    if (a === '--samples') args.query.set('samples', next());
    else if (a === '--target') args.query.set('target', next());
    else if (a === '--impls') args.query.set('impls', next());
    else if (a === '--quick') args.query.set('cases', 'main');
    else if (a === '--full') args.query.set('cases', 'full');
    else if (a === '--port') args.port = Number(next());
    else throw new Error(`unknown option ${a} (see the header of bench/run-browser.mjs)`);
  }
  return args;
}

const say = (line) => process.stdout.write(`${line}\n`);
const elapsed = () => `${((performance.now() - started) / 1000).toFixed(0)}s`;

/** Chromium path and flags: the project's shared ones (scripts/chromium-webgpu.mjs), plus developer features. */
async function chromiumConfig() {
  const m = await import(pathToFileURL(join(ROOT, 'scripts', 'chromium-webgpu.mjs')).href);
  // Full-resolution GPU timestamps (otherwise quantized to 100 µs) and complete adapter info.
  return { path: m.CHROMIUM_PATH, args: [...m.CHROMIUM_WEBGPU_ARGS, '--enable-webgpu-developer-features'] };
}

function timestamp() {
  return new Date()
    .toISOString()
    .replace(/[:]/g, '-')
    .replace(/\.\d+Z$/, 'Z');
}

async function main() {
  const args = parseArgs(process.argv.slice(2));
  await mkdir(RESULTS, { recursive: true });

  say(`[run-browser] building the page with vite (vite.config.ts → ${OUT_DIR}) ...`);
  const { build } = await import('vite');
  await build({ root: ROOT, configFile: join(ROOT, 'vite.config.ts'), logLevel: 'warn', mode: 'production' });

  const server = await startStaticServer(OUT_DIR, args.port);
  const { chromium } = await import('playwright-core');
  const { path, args: chromiumArgs } = await chromiumConfig();
  say(`[run-browser] ${elapsed()} serving ${OUT_DIR} at ${server.url}; launching ${path} ${chromiumArgs.join(' ')}`);
  const browser = await chromium.launch({ executablePath: path, headless: true, args: chromiumArgs });
  let exitCode = 0;
  try {
    const context = await browser.newContext({ viewport: { width: 1400, height: 1000 }, deviceScaleFactor: 1 });
    const page = await context.newPage();

    // Page console → terminal. Progress is redrawn in place on a terminal, throttled in a log.
    const tty = process.stdout.isTTY;
    let lastProgressAt = 0;
    let lastCase = -1;
    let progressShown = false;
    const clearProgress = () => {
      if (tty && progressShown) process.stdout.write('\r\x1b[2K');
      progressShown = false;
    };
    page.on('console', (msg) => {
      const text = msg.text();
      if (text.startsWith('[bench:progress] ')) {
        const p = JSON.parse(text.slice('[bench:progress] '.length));
        const pct = p.total ? ((100 * p.done) / p.total).toFixed(0).padStart(3) : '  0';
        const line = `[progress ${pct}% ${elapsed()}] case ${p.caseIndex}/${p.caseCount} [${p.shape.join(',')}] ${p.layout} | ${p.phase}${p.impl ? ` | ${p.impl} ${p.op}` : ''}`;
        const t = performance.now();
        if (tty) {
          process.stdout.write(`\r\x1b[2K${line.slice(0, (process.stdout.columns || 120) - 1)}`);
          progressShown = true;
        } else if (t - lastProgressAt > 5000 || p.caseIndex !== lastCase) {
          say(line);
          lastProgressAt = t;
        }
        lastCase = p.caseIndex;
        return;
      }
      clearProgress();
      if (text.startsWith('[bench] ')) say(`[page ${elapsed()}] ${text.slice(8)}`);
      else if (text.startsWith('[bench:')) say(`[page] ${text}`);
      else if (msg.type() === 'error' || msg.type() === 'warning') say(`[page ${msg.type()}] ${text}`);
    });
    page.on('pageerror', (err) => {
      clearProgress();
      say(`[page error] ${err.message}`);
    });

    const url = `${server.url}/index.html${args.query.size ? `?${args.query}` : ''}`;
    say(`[run-browser] opening ${url}`);
    await page.goto(url);
    await page.waitForFunction(() => window.__bench && (window.__bench.state === 'done' || window.__bench.state === 'error'), null, {
      timeout: 30 * 60_000,
      polling: 1000,
    });
    clearProgress();
    const state = await page.evaluate(() => window.__bench);
    if (state.state !== 'done' || !state.result) {
      say(`[run-browser] the page failed: ${state.error ?? 'no result'}`);
      exitCode = 1;
      return;
    }
    const result = state.result;
    result.meta.browser_version = browser.version();
    result.meta.chromium_args = chromiumArgs;
    result.meta.total_seconds = (performance.now() - started) / 1000;

    const stamp = timestamp();
    const json = `${JSON.stringify(result, null, 2)}\n`;
    await writeFile(join(RESULTS, 'latest.json'), json);
    await writeFile(join(RESULTS, `${stamp}.json`), json);
    const charts = page.locator('#charts');
    await charts.scrollIntoViewIfNeeded();
    await charts.screenshot({ path: join(RESULTS, 'latest.png') });
    await copyFile(join(RESULTS, 'latest.png'), join(RESULTS, `${stamp}.png`));

    say('');
    say(state.report);
    say('');
    say(`[run-browser] wrote bench/results/latest.json, bench/results/latest.png (and ${stamp}.json/.png)`);
    say(`[run-browser] total ${result.meta.total_seconds.toFixed(0)} s (in-page run ${result.meta.run_seconds.toFixed(0)} s)`);
  } finally {
    await browser.close();
    await server.close();
  }
  process.exitCode = exitCode;
}

main().catch((err) => {
  console.error(`[run-browser] failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
  process.exit(1);
});
