#!/bin/sh
# The one prepared GPU session: the CUDA parity runner and the GPU benchmarks, results under $OUT.
# Needs the CUDA build in build/Release (or SPARQ_BINARY), dist/ and a node: the one on PATH, or
# .carry/node.xz (xz -T2 -6 -c "$(command -v node)" > .carry/node.xz), unpacked here.
#   OUT=/tmp/out sh bench/gpu.sh [family ...]   (default: every family in bench/families)
set -u
cd "$(dirname "$0")/.."
OUT=${OUT:-bench/results/gpu}
mkdir -p "$OUT"
if command -v node >/dev/null 2>&1; then
  NODE=node
else
  NODE=/tmp/sparq-node
  xz -dc .carry/node.xz > "$NODE" && chmod +x "$NODE" || { echo "no node and no .carry/node.xz" >&2; exit 2; }
fi
{
  date -u +%Y-%m-%dT%H:%M:%SZ
  nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm,clocks.max.mem --format=csv 2>&1
  "$NODE" --version
  "$NODE" bin/sparq.js doctor
} > "$OUT/environment.txt" 2>&1
cat "$OUT/environment.txt"
"$NODE" test/gpu/parity.mjs --out "$OUT/parity.json" > "$OUT/parity.txt" 2>&1
parity=$?
cat "$OUT/parity.txt"
"$NODE" bench/run.mjs "$@" --device cuda --out "$OUT/bench" 2>&1 | tee "$OUT/bench.txt"
echo "parity exit code: $parity"
