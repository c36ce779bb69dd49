#!/usr/bin/env bash
# Fuzzes every parser of outside input with libFuzzer (Debian's clang), SECONDS each
# (default 60), one target after another, then prints executions and minutes per target.
#   bash scripts/fuzz.sh [SECONDS] [TARGET...]
# Builds into build-fuzz/ (clang, libFuzzer + ASan + UBSan on every library). Each target
# starts from the committed seeds in fuzz/corpus/NAME/ and grows a working corpus in
# build-fuzz/corpus/NAME/ (not committed). A crash writes build-fuzz/crashes/NAME/crash-*
# and makes the script exit non-zero: fix the bug, then copy the input into
# fuzz/corpus/NAME/ as a regression seed (CTest's fuzz_replay.NAME replays it).
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_EACH=${1:-60}
shift || true
BUILD_DIR=${FUZZ_BUILD_DIR:-build-fuzz}
ALL=(booru_page xml_reader html_links robots image_probe config filter demo_request)
if [ $# -gt 0 ]; then TARGETS=("$@"); else TARGETS=("${ALL[@]}"); fi
command -v clang++ >/dev/null || { echo "fuzz.sh: clang++ not found (apt-get install clang libclang-rt-14-dev)" >&2; exit 2; }

if [ ! -f "$BUILD_DIR/CMakeCache.txt" ]; then
  launcher=()
  command -v ccache >/dev/null && launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
  cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_CXX_COMPILER=clang++ \
    -DMOEFORGE_FUZZ=ON -DMOEFORGE_BUILD_TESTS=OFF -DMOEFORGE_BUILD_BENCH=OFF "${launcher[@]}"
fi
cmake --build "$BUILD_DIR" -j "${JOBS:-$(nproc)}" --target "${TARGETS[@]/#/moeforge-fuzz-}"

summary=()
failed=0
for t in "${TARGETS[@]}"; do
  work="$BUILD_DIR/corpus/$t"
  crashes="$BUILD_DIR/crashes/$t"
  mkdir -p "$work" "$crashes"
  log="$BUILD_DIR/fuzz-$t.log"
  echo "== $t: ${SECONDS_EACH}s" >&2
  start=$(date +%s)
  rc=0
  # -max_len: the largest committed seed plus room to grow; -timeout: a single input
  # taking longer than 10 s is a hang worth a report.
  "$BUILD_DIR/fuzz/moeforge-fuzz-$t" "$work" "fuzz/corpus/$t" -max_total_time="$SECONDS_EACH" \
    -max_len=16384 -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 -artifact_prefix="$crashes/" \
    >"$log" 2>&1 || rc=$?
  end=$(date +%s)
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1 | cut -d' ' -f2)
  status=ok
  if [ "$rc" -ne 0 ]; then
    status="CRASH (rc $rc, see $log and $crashes/)"
    failed=1
    tail -40 "$log" >&2
  fi
  minutes=$(awk -v s=$((end - start)) 'BEGIN {printf "%.1f", s / 60}')
  summary+=("$(printf '%-13s %12s execs  %5s min  cov %-6s %s' "$t" "${execs:-?}" "$minutes" "${cov:-?}" "$status")")
done
printf '%s\n' "${summary[@]}"
exit "$failed"
