#!/bin/sh
# Training images/s of moeforge's DRAGAN step (C++, moeforge-train-bench) beside the same
# model, loss and batch in Python PyTorch (bench/train_reference.py), in the same run,
# same thread count, interleaved (C++, Python, C++, Python) so load changes hit both.
#   [CPP_FLAGS="--bf16"] bench/train_compare.sh BUILD_DIR [resolution] [batch] [steps] [threads] [model flags...]
# Model flags (--g-blocks 4 ...) go to both sides; CPP_FLAGS only to C++ (its chosen
# memory format / bf16; Python stays idiomatic fp32 NCHW unless given them as model flags).
# Prints each measurement as JSON and the ratio of the medians.
set -eu
build=${1:?usage: train_compare.sh BUILD_DIR [resolution] [batch] [steps] [threads] [cpp flags]}
res=${2:-64}; batch=${3:-64}; steps=${4:-3}; threads=${5:-0}
shift $(( $# < 5 ? $# : 5 ))
here=$(cd "$(dirname "$0")" && pwd)
py=${PYTHON:-/usr/bin/python3}
out=$(mktemp)
for round in 1 2; do
  # shellcheck disable=SC2086
  "$build/trainer/moeforge-train-bench" --resolution "$res" --batch "$batch" --steps "$steps" --threads "$threads" "$@" ${CPP_FLAGS:-} | tee -a "$out"
  "$py" "$here/train_reference.py" --resolution "$res" --batch "$batch" --steps "$steps" --threads "$threads" "$@" | tee -a "$out"
done
"$py" - "$out" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.startswith("{")]
cpp = statistics.median(r["img_per_s"] for r in rows if r["impl"] == "cpp")
py = statistics.median(r["img_per_s"] for r in rows if r["impl"] == "python")
print(json.dumps({"resolution": rows[0]["resolution"], "batch": rows[0]["batch"], "threads": rows[0]["threads"],
                  "cpp_img_per_s": round(cpp, 2), "python_img_per_s": round(py, 2), "speedup": round(cpp / py, 3)}))
PY
rm -f "$out"
