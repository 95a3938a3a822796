#!/bin/sh
# webgpu-batchnorm: the Dawn (Node) benchmark on this machine's GPU, with everything it needs in
# this folder: Node (node/node.gz), the library and the benchmark (app/), Dawn's webgpu addon,
# Debian's Vulkan loader (vulkan/). Needs no network, no install and no root; writes only to a
# temporary directory and to the results directory.
#
#   ./run.sh                      NVIDIA GPU through its Vulkan driver (the default)
#   ./run.sh --swiftshader        SwiftShader's ICD (/usr/lib/chromium/vk_swiftshader_icd.json)
#   ./run.sh --icd FILE.json      any Vulkan ICD manifest
#   ./run.sh ... --results DIR    where the JSON, the table and the log go (default ./results)
#   ./run.sh ... --timeout S      hard limit for the benchmark (default 290 s)
#   ./run.sh ... -- ARGS          benchmark options instead of the defaults below:
#                                 --quick | --cases 8x256x28x28:cl,256x1024 | --samples N |
#                                 --target MS | --impls webgpu-batchnorm,js-loop,...
# Environment: BN_VULKAN_ICD (= --icd), BN_RESULTS_DIR (= --results), BN_TIMEOUT_S (= --timeout).
set -eu

HERE=$(cd "$(dirname "$0")" && pwd)
ICD="${BN_VULKAN_ICD:-}"
RESULTS="${BN_RESULTS_DIR:-$HERE/results}"
LIMIT="${BN_TIMEOUT_S:-290}"
SWIFTSHADER_ICD=/usr/lib/chromium/vk_swiftshader_icd.json
# On a real GPU a 100 ms sample amortizes the submit round trip many times over; tfjs-cpu is left
# out because its training step alone takes seconds on the large shapes (add it with -- --impls).
DEFAULT_ARGS="--samples 5 --target 100 --impls webgpu-batchnorm,tfjs-webgpu,ort-webgpu,webgpu-batchnorm-cpu,js-loop"
BENCH_ARGS=""
HAVE_ARGS=0

while [ $# -gt 0 ]; do
  case "$1" in
    --swiftshader) ICD="$SWIFTSHADER_ICD"; shift ;;
    --icd) ICD="$2"; shift 2 ;;
    --results) RESULTS="$2"; shift 2 ;;
    --timeout) LIMIT="$2"; shift 2 ;;
    --) shift; HAVE_ARGS=1; BENCH_ARGS="$*"; break ;;
    -h|--help) sed -n '2,20p' "$0"; exit 0 ;;
    *) echo "run.sh: unknown option $1 (see ./run.sh --help)" >&2; exit 2 ;;
  esac
done
[ "$HAVE_ARGS" = 1 ] || BENCH_ARGS="$DEFAULT_ARGS"

log() { echo "[run.sh] $*"; }
WORK=$(mktemp -d "${TMPDIR:-/tmp}/webgpu-bn-bench.XXXXXX")
trap 'rm -rf "$WORK"' EXIT INT TERM

# The NVIDIA driver's Vulkan manifest: the usual places, then (containers often mount the driver
# libraries without the manifest) one written here for the driver's Vulkan library.
find_nvidia_icd() {
  for f in \
    /usr/share/vulkan/icd.d/nvidia_icd.json \
    /etc/vulkan/icd.d/nvidia_icd.json \
    /usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json \
    /usr/share/vulkan/icd.d/nvidia_icd.x86_64.json \
    /etc/vulkan/icd.d/nvidia_icd.x86_64.json \
    /usr/local/share/vulkan/icd.d/nvidia_icd.json; do
    if [ -f "$f" ]; then echo "$f"; return 0; fi
  done
  for d in /usr/lib/x86_64-linux-gnu /usr/lib64 /usr/local/nvidia/lib64 /usr/local/nvidia/lib /usr/lib; do
    if [ -e "$d/libGLX_nvidia.so.0" ]; then
      printf '{"file_format_version":"1.0.0","ICD":{"library_path":"%s","api_version":"1.3.0"}}\n' "$d/libGLX_nvidia.so.0" > "$WORK/nvidia_icd.json"
      echo "$WORK/nvidia_icd.json"
      return 0
    fi
  done
  return 1
}

if [ -z "$ICD" ]; then
  if ! ICD=$(find_nvidia_icd); then
    echo "run.sh: no NVIDIA Vulkan driver found (no nvidia_icd.json in /usr/share/vulkan/icd.d, /etc/vulkan/icd.d," >&2
    echo "        /usr/local/nvidia/share/vulkan/icd.d, and no libGLX_nvidia.so.0). Pass --icd FILE.json, or" >&2
    echo "        --swiftshader to run on the CPU. In a container, NVIDIA_DRIVER_CAPABILITIES must include 'graphics'." >&2
    exit 1
  fi
fi
[ -f "$ICD" ] || { echo "run.sh: ICD manifest $ICD does not exist" >&2; exit 1; }
log "Vulkan ICD: $ICD"

log "unpacking Node $(cat "$HERE/node/VERSION"), Dawn and the app into $WORK"
gzip -dc "$HERE/node/node.gz" > "$WORK/node"
chmod 755 "$WORK/node"
cp -R "$HERE/app" "$WORK/app"
for gz in "$WORK/app/node_modules/webgpu/dist/linux-x64/dawn.node.gz" "$WORK/app/node_modules/onnxruntime-web/dist/ort-wasm-simd-threaded.jsep.wasm.gz"; do
  gzip -d "$gz"
done

# The carried loader comes first; the driver itself stays the system's.
LD_LIBRARY_PATH="$HERE/vulkan${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
export LD_LIBRARY_PATH
# Node and Dawn need libstdc++; a host without a recent enough one gets Debian's.
DAWN="$WORK/app/node_modules/webgpu/dist/linux-x64/dawn.node"
if ! "$WORK/node" -e "require(process.argv[1])" "$DAWN" >/dev/null 2>&1; then
  LD_LIBRARY_PATH="$LD_LIBRARY_PATH:$HERE/fallback-libs"
  log "using the carried libstdc++ / libgcc_s (the system's did not load Node or Dawn)"
  "$WORK/node" -e "require(process.argv[1])" "$DAWN"
fi
VK_ICD_FILENAMES="$ICD"
VK_DRIVER_FILES="$ICD"
XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-$WORK}"
export VK_ICD_FILENAMES VK_DRIVER_FILES XDG_RUNTIME_DIR

if command -v nvidia-smi >/dev/null 2>&1; then nvidia-smi -L 2>/dev/null | sed 's/^/[run.sh] /' || true; fi
log "node $("$WORK/node" --version); benchmark options: $BENCH_ARGS"

mkdir -p "$RESULTS"
STAMP=$(date -u +%Y-%m-%dT%H-%M-%SZ)
LOG="$RESULTS/run-$STAMP.log"
TIMEOUT=""
if command -v timeout >/dev/null 2>&1; then TIMEOUT="timeout $LIMIT"; fi
# shellcheck disable=SC2086 # BENCH_ARGS and TIMEOUT are word lists on purpose
{ status=0; $TIMEOUT "$WORK/node" "$WORK/app/runner.mjs" $BENCH_ARGS || status=$?; echo "$status" > "$WORK/rc"; } 2>&1 | tee "$LOG"
RC=$(cat "$WORK/rc")
if [ "$RC" != 0 ]; then
  [ "$RC" = 124 ] && echo "run.sh: the benchmark ran past $LIMIT s and was stopped; try -- --quick" >&2
  echo "run.sh: the benchmark failed (exit $RC); log: $LOG" >&2
  exit "$RC"
fi
cp "$WORK/app/bench/results/node-latest.json" "$RESULTS/result-$STAMP.json"
cp "$WORK/app/bench/results/node-latest.txt" "$RESULTS/table-$STAMP.txt"
cp "$RESULTS/result-$STAMP.json" "$RESULTS/latest.json"
cp "$RESULTS/table-$STAMP.txt" "$RESULTS/latest.txt"
log "wrote $RESULTS/result-$STAMP.json, table-$STAMP.txt (also latest.json / latest.txt) and run-$STAMP.log"
