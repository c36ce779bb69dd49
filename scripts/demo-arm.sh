#!/bin/bash
# The demo's training at a fixed number of steps on a finished demo workspace, to compare
# trainer settings on the demo's own data and model (docs/runs/README.md, "The moving
# average's ramp").
#   scripts/demo-arm.sh WS OUT NAME [TRAIN FLAGS...]
# WS: the `ws` of a `moeforge demo --out DIR` run. 635 steps (what the demo's 5 training
# minutes give on 2 idle cores) on one thread, so arms can run side by side; scored by
# `eval --n 512` with the workspace tagger, sampled --by hair_color.
set -euo pipefail
ws=${1:?usage: demo-arm.sh WS OUT NAME [FLAGS...]}
out=${2:?}; name=${3:?}
shift 3
here=$(cd "$(dirname "$0")/.." && pwd)
mf=${MOEFORGE:-$here/build/cli/moeforge}
mkdir -p "$out"
"$mf" train -w "$ws" --run "$name" --view clean --resolution 64 --steps 635 --batch 32 --g-channels 32 --g-blocks 4 \
  --d-channels 32 --d-blocks 1 --threads 1 --checkpoint-every 250 --sample-every 250 --snapshot-every 250 "$@" \
  > "$out/$name.log" 2>&1
"$mf" eval -w "$ws" --run "$name" --n 512 --threads 1 --json > "$out/$name-eval.json" 2>> "$out/$name.log"
"$mf" sample -w "$ws" --run "$name" --by hair_color --n 8 --seed 1 --scale 2 --threads 1 \
  -o "$out/$name-hair.png" >> "$out/$name.log" 2>&1
