#!/bin/bash
# The generator recipe's ablation (issue 14) on the real faces of mlds_extra_96 at 64 px:
# one arm per setting, every arm the same steps (or MINUTES of wall time) from one workspace, scored
# by `moeforge eval` with the same tagger model file (n = 2048) and sampled --by hair_color.
#   scripts/ablation.sh OUT [STEPS] [ARM...]
# OUT/ws is the workspace `scripts/quality-run.sh mlds` builds (made here when missing,
# with its tagger); OUT/<arm>/ gets train.json, eval.json and by-hair.png; OUT/table.md
# collects the figures. Re-running skips the arms already evaluated. THREADS (default 0:
# all cores) sets each command's threads, e.g. THREADS=1 for two arms side by side.
set -euo pipefail
out=${1:?usage: ablation.sh OUT [STEPS] [ARM...]}
steps=${2:-1500}
shift $(( $# >= 2 ? 2 : 1 ))
here=$(cd "$(dirname "$0")/.." && pwd)
mf=${MOEFORGE:-$here/build/cli/moeforge}
ws=$out/ws
threads=(--threads "${THREADS:-0}")
mkdir -p "$out"
if [ ! -f "$ws/models/builtin-tagger.pt" ]; then
  # The workspace and tagger of the real-face quality run, without its training.
  MOEFORGE="$mf" bash "$here/scripts/quality-run.sh" mlds "$out" 0
fi
tagger=$ws/models/builtin-tagger.pt
# The model every arm shares: the quality runs' (G 64 x 8 blocks, D 32 x 1 per stage,
# batch 32); the arms differ only in the recipe.
common=(--resolution 64 --steps "$steps" --batch 32 --g-channels 64 --g-blocks 8 --d-channels 32 --d-blocks 1
        --sample-every 500 --checkpoint-every 500 --keep-snapshots 0 "${threads[@]}")
# MINUTES > 0 stops every arm after that much training wall time (equal time per arm;
# STEPS then only caps it); CPU_MINUTES > 0 after that much CPU time instead (equal
# compute per arm on a shared machine: with THREADS=1, minutes of one idle core).
[ "${MINUTES:-0}" != 0 ] && common+=(--minutes "$MINUTES")
[ "${CPU_MINUTES:-0}" != 0 ] && common+=(--cpu-minutes "$CPU_MINUTES")
# "base" is the session-5 recipe: every later part off, the report's architecture.
off=(--ema-kimg 0 --no-icnr --augment none --template none --upsample shuffle --d-down conv)
arch=(--upsample nearest --d-down pool)
declare -A arms=(
  [report]="--l-adv -1 ${off[*]}"
  [base]="--l-adv 1 ${off[*]}"
  [ema]="--l-adv 1 --no-icnr --augment none --template none --upsample shuffle --d-down conv"
  [icnr]="--l-adv 1 --ema-kimg 0 --augment none --template none --upsample shuffle --d-down conv"
  [augment]="--l-adv 1 --ema-kimg 0 --no-icnr --template none --upsample shuffle --d-down conv"
  [arch]="--l-adv 1 --ema-kimg 0 --no-icnr --augment none --template none ${arch[*]}"
  [template]="--l-adv 1 --ema-kimg 0 --no-icnr --augment none --template tags --upsample shuffle --d-down conv"
  [all]="--l-adv 1"
  [mbstd]="--l-adv 1 --d-mbstd 4"
)
# mbstd (session 12): every part plus D's minibatch stddev, groups of 4 (StyleGAN's), for variety.
order=(report base ema icnr augment arch template all mbstd)
[ $# -gt 0 ] && order=("$@")
for arm in "${order[@]}"; do
  [ -n "${arms[$arm]+x}" ] || { echo "ablation.sh: unknown arm '$arm' (${!arms[*]})" >&2; exit 2; }
  dir=$out/$arm
  [ -f "$dir/eval.json" ] && continue
  mkdir -p "$dir"
  resume=()
  [ -f "$ws/runs/ab-$arm/checkpoint.pt" ] && resume=(--resume)
  # shellcheck disable=SC2086
  "$mf" train -w "$ws" --run "ab-$arm" "${common[@]}" ${arms[$arm]} "${resume[@]}" --json | tail -1 > "$dir/train.json"
  "$mf" eval -w "$ws" --run "ab-$arm" --tagger-model "$tagger" --n 2048 "${threads[@]}" --json > "$dir/eval.json"
  "$mf" sample -w "$ws" --run "ab-$arm" --by hair_color --n 8 --seed 1 --scale 2 "${threads[@]}" -o "$dir/by-hair.png" >/dev/null
done
python3 - "$out" "${order[@]}" <<'PY'
import json, sys, os
out, arms = sys.argv[1], sys.argv[2:]
rows = ["| arm | steps | img/s | train s | hair | eyes | FD | FD real halves | precision | recall |",
        "|---|---|---|---|---|---|---|---|---|---|"]
for a in arms:
    try:
        t = json.load(open(os.path.join(out, a, "train.json")))
        e = json.load(open(os.path.join(out, a, "eval.json")))
    except (OSError, ValueError):
        continue
    f = e["label_fidelity"]
    rows.append(f"| {a} | {e['step']} | {t.get('images_per_s', 0):.1f} | {t.get('seconds', 0):.0f} | "
                f"{100*f['hair_color']:.1f}% | {100*f['eye_color']:.1f}% | {e['frechet_distance']:.2f} | "
                f"{e['frechet_distance_real_halves']:.2f} | {e['precision_k3']:.2f} | {e['recall_k3']:.2f} |")
open(os.path.join(out, "table.md"), "w").write("\n".join(rows) + "\n")
print("\n".join(rows))
PY
