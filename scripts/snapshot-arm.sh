#!/bin/bash
# One training arm whose snapshots are each scored, to see how a recipe moves over a run
# rather than where it happens to stop (docs/runs/README.md, "Snapshots over a run").
#   scripts/snapshot-arm.sh WS OUT NAME STEPS [TRAIN FLAGS...]
# WS: a workspace with a tagged view and models/builtin-tagger.pt (e.g. OUT/ws of
# scripts/ablation.sh). The quality runs' model (G 64 x 8, D 32 x 1, batch 32) at 64 px on
# one thread; a snapshot every 250 steps, each scored by `eval --n 512` with that tagger
# file into OUT/NAME-evals.jsonl, and the last generator's --by hair_color grid.
set -euo pipefail
ws=${1:?usage: snapshot-arm.sh WS OUT NAME STEPS [FLAGS...]}
out=${2:?}; name=${3:?}; steps=${4:?}
shift 4
here=$(cd "$(dirname "$0")/.." && pwd)
mf=${MOEFORGE:-$here/build/cli/moeforge}
tagger=$ws/models/builtin-tagger.pt
mkdir -p "$out"
"$mf" train -w "$ws" --run "$name" --resolution 64 --steps "$steps" --batch 32 --g-blocks 8 --d-blocks 1 \
  --threads 1 --snapshot-every 250 --sample-every 250 --keep-snapshots 100 "$@" --json > "$out/$name.log" 2>&1
for s in $(seq 250 250 "$steps"); do
  [ -f "$ws/runs/$name/snapshots/g_$(printf %08d "$s").pt" ] || continue
  "$mf" eval -w "$ws" --run "$name" --snapshot "$s" --tagger-model "$tagger" --n 512 --threads 1 --json \
    >> "$out/$name-evals.jsonl" 2>> "$out/$name.log"
done
"$mf" sample -w "$ws" --run "$name" --by hair_color --n 8 --seed 1 --scale 2 --threads 1 \
  -o "$out/$name-hair.png" >> "$out/$name.log" 2>&1
