#!/bin/bash
# The built-in tagger from a small crawl (issue 15), as a new user runs it: crawl and
# detect demo booru posts with the defaults, `tag train` on one seed, score the model's
# own decisions on the faces of another seed against the booru's truth.
#
#   tagger-small-crawl.sh BUILD OUT ws   NAME POSTS SEED PORT   crawl + detect a workspace
#   tagger-small-crawl.sh BUILD OUT run  NAME TRAIN_WS [tag train options...]
#                                        train on OUT/TRAIN_WS, score on OUT/wsB
# e.g. ws wsA 1500 11 18771; ws wsB 300 12 18772; ws ws240 240 1 18773; run defaults wsA
BUILD=$1; OUT=$2; what=$3; shift 3
BIN=$BUILD/cli/moeforge
export MOEFORGE_MODEL_PATH=${MOEFORGE_MODEL_PATH:-$(dirname "$0")/../../../shared/assets/models}
mkdir -p "$OUT/runs"
if [ "$what" = ws ]; then
  name=$1; posts=$2; seed=$3; port=$4
  rm -rf "$OUT/$name"
  $BIN demo-booru --port "$port" --posts "$posts" --seed "$seed" --dump-truth "$OUT/$name.truth.jsonl" > "$OUT/$name.booru.log" 2>&1 &
  booru=$!
  trap 'kill $booru 2>/dev/null' EXIT
  for _ in $(seq 120); do grep -q listening "$OUT/$name.booru.log" && break; sleep 1; done
  $BIN init "$OUT/$name"
  $BIN crawl -w "$OUT/$name" --source danbooru --url "http://127.0.0.1:$port" --limit "$posts" --rate 1000 \
    --concurrency 8 --quiet --json | tail -1
  $BIN detect -w "$OUT/$name" --json | tail -1
elif [ "$what" = run ]; then
  name=$1; ws=$2; shift 2
  /usr/bin/time -f "%e s wall %U s user" $BIN tag train -w "$OUT/$ws" --out "$OUT/runs/$name.pt" --json "$@" \
    > "$OUT/runs/$name.train.json" 2> "$OUT/runs/$name.train.err"
  "$BUILD/tagger/moeforge-tag-eval" --model "$OUT/runs/$name.pt" --workspace "$OUT/wsB" --truth "$OUT/wsB.truth.jsonl" \
    --json "$OUT/runs/$name.eval.json" > "$OUT/runs/$name.eval.txt" 2>&1
  tail -n 1 "$OUT/runs/$name.train.json"
  grep -E "accuracy|F1" "$OUT/runs/$name.eval.txt" | head -13
else
  echo "usage: $0 BUILD OUT ws NAME POSTS SEED PORT | run NAME TRAIN_WS [options]" >&2
  exit 2
fi
