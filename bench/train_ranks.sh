#!/bin/bash
# Images/s of 1 vs 2 data-parallel ranks (1 thread each) and the share of the step loop
# spent in collectives (docs/scaling.md, "Measured"). The default model at 32 px, fp32,
# on synthetic faces; two rounds; the load average beside each run.
#   bench/train_ranks.sh [BUILD_DIR]   (default: build)
set -euo pipefail
build=${1:-build}
ws=$(mktemp -d)/ws
"$build/trainer/moeforge-synthetic-faces" "$ws" 256 >/dev/null
common="--resolution 32 --threads 1 --no-bf16 --steps 30 --sample-every 1000 --checkpoint-every 1000 --keep-snapshots 0 --json"
for round in 1 2; do
  for cfg in "1 16" "2 8" "2 16"; do
    set -- $cfg
    load=$(cut -d' ' -f1-3 /proc/loadavg)
    out=$("$build/cli/moeforge" train -w "$ws" --run "r${round}_n$1_b$2" --nproc "$1" --batch "$2" $common 2>/dev/null | tail -1)
    echo "round $round: $1 rank(s) x $2, load [$load]: $(echo "$out" | python3 -c \
      "import json,sys; j=json.load(sys.stdin); print('%.1f images/s, collective share %.2f' % (j['images_per_s'], j['collective_share']))")"
  done
done
rm -rf "$(dirname "$ws")"
