#!/usr/bin/env node
/**
 * Idempotent environment setup, run by `npm test`, `npm start`, `npm run bench:node` and `.ci/run`.
 *
 * Ensures, installing only what is missing (Debian 12, as root):
 *   - apt `chromium`      /usr/bin/chromium and SwiftShader's Vulkan ICD (browser test, benchmarks, Dawn in Node)
 *   - apt `libvulkan1`    libvulkan.so.1, which Dawn loads in Node
 *   - apt `python3-torch` torch for /usr/bin/python3 (PyTorch reference tests, fixture generator)
 *   - npm dependencies    `npm ci` when node_modules is missing, a reinstall when it is stale
 *                          against package-lock.json
 *
 * `apt-get update` runs at most once, and only when a package is missing. When everything is
 * present the script spawns three tiny processes and reads two JSON files (well under a second).
 * Not root and something from apt missing: prints the exact command and exits 1.
 *
 * Environment: SETUP_SKIP_APT=1 skips the apt part (e.g. on a non-Debian dev box).
 */
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const PYTHON = '/usr/bin/python3';

/** What each apt package must provide; `probe` says whether it is usable right now. */
const APT_PACKAGES = [
  {
    name: 'chromium',
    probe: () => existsSync('/usr/bin/chromium') && existsSync('/usr/lib/chromium/vk_swiftshader_icd.json'),
  },
  {
    name: 'libvulkan1',
    probe: () => libraryExists('libvulkan.so.1'),
  },
  {
    name: 'python3-torch',
    // find_spec locates torch without importing it: `import torch` costs 1-5 s, find_spec ~15 ms.
    // After an install the real import is checked once (see verifyTorchImport).
    probe: () =>
      existsSync(PYTHON) &&
      run(PYTHON, ['-c', 'import importlib.util, sys; sys.exit(0 if importlib.util.find_spec("torch") else 1)']).status === 0,
  },
];

const log = (msg) => console.log(`[setup] ${msg}`);

function run(cmd, args, options = {}) {
  return spawnSync(cmd, args, { encoding: 'utf8', ...options });
}

/** Runs a command with inherited stdio; exits the script if it fails. */
function mustRun(cmd, args, env = process.env) {
  log(`$ ${cmd} ${args.join(' ')}`);
  const r = spawnSync(cmd, args, { stdio: 'inherit', cwd: ROOT, env });
  if (r.error || r.status !== 0) {
    console.error(`[setup] FAILED: ${cmd} ${args.join(' ')} (${r.error ? r.error.message : `exit ${r.status}`})`);
    process.exit(1);
  }
}

function libraryExists(soname) {
  const dirs = [
    '/usr/lib/x86_64-linux-gnu',
    '/usr/lib/aarch64-linux-gnu',
    '/lib/x86_64-linux-gnu',
    '/lib/aarch64-linux-gnu',
    '/usr/lib',
    '/lib',
  ];
  return dirs.some((d) => existsSync(join(d, soname)));
}

/** Packages dpkg reports as fully installed, from one dpkg-query call. */
function dpkgInstalled(names) {
  // biome-ignore lint/suspicious/noTemplateCurlyInString: dpkg-query's own ${field} format, not a template
  const r = run('dpkg-query', ['-W', '-f=${Package} ${db:Status-Status}\\n', ...names]);
  if (r.error) return null; // no dpkg: not Debian
  const installed = new Set();
  for (const line of (r.stdout ?? '').split('\n')) {
    const [pkg, status] = line.trim().split(/\s+/);
    if (pkg && status === 'installed') installed.add(pkg.replace(/:.*$/, ''));
  }
  return installed;
}

function ensureAptPackages() {
  if (process.env.SETUP_SKIP_APT === '1') {
    log('apt: skipped (SETUP_SKIP_APT=1)');
    return;
  }
  const installed = dpkgInstalled(APT_PACKAGES.map((p) => p.name));
  if (installed === null) {
    const broken = APT_PACKAGES.filter((p) => !p.probe()).map((p) => p.name);
    if (broken.length) {
      console.error(`[setup] no dpkg here, and these are missing: ${broken.join(', ')} (set SETUP_SKIP_APT=1 to ignore)`);
      process.exit(1);
    }
    log('apt: no dpkg, but chromium, libvulkan and torch were found');
    return;
  }
  const missing = APT_PACKAGES.filter((p) => !installed.has(p.name) || !p.probe()).map((p) => p.name);
  if (missing.length === 0) {
    log(`apt: ${APT_PACKAGES.map((p) => p.name).join(', ')} present`);
    return;
  }
  const aptArgs = ['install', '-y', '--no-install-recommends', ...missing];
  const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;
  if (!isRoot) {
    console.error(`[setup] missing apt packages: ${missing.join(', ')}; not root, so install them yourself:`);
    console.error(`  sudo apt-get update && sudo DEBIAN_FRONTEND=noninteractive apt-get ${aptArgs.join(' ')}`);
    process.exit(1);
  }
  log(`apt: installing ${missing.join(', ')}`);
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  mustRun('apt-get', ['update'], env);
  // Already-installed but unusable packages (a probe failed) need --reinstall to be fixed.
  const reinstall = missing.some((name) => installed.has(name)) ? ['--reinstall'] : [];
  mustRun('apt-get', [...aptArgs.slice(0, 2), ...reinstall, ...aptArgs.slice(2)], env);
  const stillMissing = APT_PACKAGES.filter((p) => !p.probe()).map((p) => p.name);
  if (stillMissing.length) {
    console.error(`[setup] installed, but still unusable: ${stillMissing.join(', ')}`);
    process.exit(1);
  }
  if (missing.includes('python3-torch')) verifyTorchImport();
}

function verifyTorchImport() {
  const r = run(PYTHON, ['-c', 'import torch; print(torch.__version__)']);
  if (r.status !== 0) {
    console.error(`[setup] ${PYTHON} cannot import torch:\n${r.stderr}`);
    process.exit(1);
  }
  log(`torch ${r.stdout.trim()} imports`);
}

/**
 * Why node_modules does not match package-lock.json, or null when it does. Compares the lockfile
 * with npm's own record of what it installed (node_modules/.package-lock.json): every non-optional
 * package must be there at the locked version, and nothing else may be. Optional packages may be
 * absent (other platforms' native binaries).
 */
function npmStaleReason() {
  const lockPath = join(ROOT, 'package-lock.json');
  const hiddenPath = join(ROOT, 'node_modules', '.package-lock.json');
  if (!existsSync(join(ROOT, 'node_modules'))) return 'node_modules is missing';
  if (!existsSync(lockPath)) return 'package-lock.json is missing';
  if (!existsSync(hiddenPath)) return 'node_modules/.package-lock.json is missing';
  let lock;
  let hidden;
  try {
    lock = JSON.parse(readFileSync(lockPath, 'utf8')).packages ?? {};
    hidden = JSON.parse(readFileSync(hiddenPath, 'utf8')).packages ?? {};
  } catch (err) {
    return `cannot parse a lockfile (${err instanceof Error ? err.message : String(err)})`;
  }
  for (const [key, entry] of Object.entries(lock)) {
    if (key === '' || !key.startsWith('node_modules/')) continue;
    const have = hidden[key];
    if (!have) {
      if (entry.optional) continue;
      return `${key.slice('node_modules/'.length)}@${entry.version} is not installed`;
    }
    if (have.version !== entry.version) {
      return `${key.slice('node_modules/'.length)} is ${have.version}, the lockfile wants ${entry.version}`;
    }
  }
  for (const key of Object.keys(hidden)) {
    if (key.startsWith('node_modules/') && !(key in lock))
      return `${key.slice('node_modules/'.length)} is installed but not in the lockfile`;
  }
  // Top-level packages must also be on disk (npm's record can outlive a deleted folder).
  for (const key of Object.keys(lock)) {
    if (/^node_modules\/(@[^/]+\/)?[^/]+$/.test(key) && key in hidden && !existsSync(join(ROOT, key, 'package.json'))) {
      return `${key.slice('node_modules/'.length)} is recorded but missing on disk`;
    }
  }
  return null;
}

function ensureNodeModules() {
  const reason = npmStaleReason();
  if (reason === null) {
    log('npm: node_modules matches package-lock.json');
    return;
  }
  const flags = ['--no-audit', '--no-fund'];
  const fresh = !existsSync(join(ROOT, 'node_modules'));
  // `npm ci` installs exactly the lockfile (and fails if package.json disagrees with it: that is a
  // bug to fix, not to paper over). Locally, a stale tree is updated with `npm install`, which is
  // incremental and also brings the lockfile up to date after a package.json edit.
  const useCi = fresh || process.env.CI === 'true' || process.env.CI === '1';
  log(`npm: ${reason}; running npm ${useCi ? 'ci' : 'install'}`);
  mustRun('npm', [useCi ? 'ci' : 'install', ...flags]);
  const after = npmStaleReason();
  if (after !== null) {
    console.error(`[setup] npm finished but node_modules is still stale: ${after}`);
    process.exit(1);
  }
}

const started = Date.now();
ensureAptPackages();
ensureNodeModules();
log(`ready (${Date.now() - started} ms)`);
