#!/bin/bash
# The one prepared GPU session: CUDA parity, GPU benchmarks and a memcheck pass, results under $OUT.
# Needs the CUDA build in build/Release (or SPARQ_BINARY), dist/ and a node: the one on PATH, or
# .carry/node.xz (xz -T2 -6 -c "$(command -v node)" > .carry/node.xz), unpacked here.
#   OUT=/tmp/out BUDGET_S=420 bash bench/gpu.sh [family ...]   (default: every family)
# RACECHECK="kv rat" adds compute-sanitizer racecheck passes over those families' parity cases.
# Every step runs in its own process (a kernel fault poisons only its process's CUDA context) under
# a share of BUDGET_S, and writes as it goes, so a run cut short still returns what it measured.
# Files (at most 8 come back from the device tool): environment.txt, parity.txt, parity.json,
# bench.txt, memcheck.txt and the merged report <TAG>-<date>.{json,md,svg} (TAG defaults to gpu).
set -u
cd "$(dirname "$0")/.."
OUT=${OUT:-bench/results/gpu}
BUDGET_S=${BUDGET_S:-540}
mkdir -p "$OUT"
T0=$(date +%s)
left() { echo $((BUDGET_S - ($(date +%s) - T0))); }
# at most $1 seconds, and never past the budget
cap() { local l; l=$(left); if [ "$1" -lt "$l" ]; then echo "$1"; else echo "$l"; fi; }

if command -v node >/dev/null 2>&1; then
  NODE=node
else
  NODE=/tmp/sparq-node
  if command -v xz >/dev/null 2>&1; then xz -dc .carry/node.xz > "$NODE"
  else python3 -c "import lzma, shutil; shutil.copyfileobj(lzma.open('.carry/node.xz'), open('$NODE', 'wb'))"; fi
  chmod +x "$NODE" || { echo "no node and no .carry/node.xz" >&2; exit 2; }
fi
FAMILIES=${*:-sparse kv rat attention core}
# DEVICE=cpu BENCH_FLAGS=--quick: a dry run of this script on a machine without a GPU.
DEVICE=${DEVICE:-cuda:0}
BENCH_FLAGS=${BENCH_FLAGS:-}

{
  date -u +%Y-%m-%dT%H:%M:%SZ
  nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm,clocks.max.mem --format=csv 2>&1
  "$NODE" --version
  "$NODE" bin/sparq.js doctor
} > "$OUT/environment.txt" 2>&1
cat "$OUT/environment.txt"

failed=""
for f in $FAMILIES; do
  timeout "$(cap 150)" "$NODE" test/gpu/parity.mjs --device "$DEVICE" --only "$f" --out "/tmp/parity-$f.json" >> "$OUT/parity.txt" 2>&1
  rc=$?
  echo "parity $f: exit $rc" | tee -a "$OUT/parity.txt"
  [ $rc -ne 0 ] && failed="$failed $f"
done
"$NODE" -e '
  const fs = require("fs");
  const runs = process.argv.slice(1).filter((f) => fs.existsSync(f)).map((f) => JSON.parse(fs.readFileSync(f, "utf8")));
  const results = runs.flatMap((r) => r.results);
  fs.writeFileSync(process.env.OUT + "/parity.json", JSON.stringify({ date: runs[0]?.date, info: runs[0]?.info, results }, null, 2) + "\n");
  console.log(`parity: ${results.filter((r) => r.ok).length} passed, ${results.filter((r) => !r.ok).length} failed`);
' $(for f in $FAMILIES; do echo "/tmp/parity-$f.json"; done) | tee -a "$OUT/parity.txt"

# Benchmarks keep 60 s for the memcheck pass.
for f in $FAMILIES; do
  budget=$(($(left) - 60))
  [ "$budget" -lt 20 ] && { echo "bench $f: skipped, out of time" | tee -a "$OUT/bench.txt"; continue; }
  timeout "$budget" "$NODE" bench/run.mjs "$f" --device "$DEVICE" $BENCH_FLAGS --out "/tmp/bench-$f" --tag part --jsonl /tmp/bench.jsonl >> "$OUT/bench.txt" 2>&1
  echo "bench $f: exit $?" >> "$OUT/bench.txt"
done
cat "$OUT/bench.txt"
# One report for the whole run; the raw lines only if that fails (a family cut short, say).
"$NODE" bench/merge.mjs --out "$OUT" --tag "${TAG:-gpu}" /tmp/bench-*/part-*.json || cp /tmp/bench.jsonl "$OUT/"

# memcheck: families that failed parity first, then the rest, while time lasts.
done_mc=""
if command -v compute-sanitizer >/dev/null 2>&1; then
  for f in $failed $FAMILIES; do
    case " $done_mc " in *" $f "*) continue ;; esac
    done_mc="$done_mc $f"
    [ "$(left)" -lt 15 ] && break
    echo "== memcheck $f" >> "$OUT/memcheck.txt"
    timeout "$(cap 120)" compute-sanitizer --tool memcheck --print-limit 20 "$NODE" test/gpu/parity.mjs --device "$DEVICE" --only "$f" >> "$OUT/memcheck.txt" 2>&1
    echo "memcheck $f: exit $?" | tee -a "$OUT/memcheck.txt"
  done
  # RACECHECK="kv ...": shared-memory hazards of those families' kernels, after the memcheck pass.
  for f in ${RACECHECK:-}; do
    [ "$(left)" -lt 15 ] && break
    echo "== racecheck $f" >> "$OUT/memcheck.txt"
    timeout "$(cap 120)" compute-sanitizer --tool racecheck "$NODE" test/gpu/parity.mjs --device "$DEVICE" --only "$f" >> "$OUT/memcheck.txt" 2>&1
    echo "racecheck $f: exit $?" | tee -a "$OUT/memcheck.txt"
  done
  grep -E "ERROR SUMMARY|RACECHECK SUMMARY|passed, " "$OUT/memcheck.txt"
else
  echo "compute-sanitizer not found" > "$OUT/memcheck.txt"
fi
echo "failed parity families:${failed:- none}; $(left) s of the budget left"
