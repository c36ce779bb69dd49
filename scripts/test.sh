#!/usr/bin/env bash
# Builds (if needed) and runs the whole test suite through CTest. Tests find models on
# MOEFORGE_MODEL_PATH and in the model cache `moeforge models pull` fills.
#   bash scripts/test.sh                        # build/, every suite
#   bash scripts/test.sh --expect-skips FILE    # fail on a skipped test FILE does not list
#   bash scripts/test.sh --sanitize             # ASan+UBSan, then TSan (see below)
#   bash scripts/test.sh --sanitize=asan        # the ASan+UBSan half only (what CI runs)
#   bash scripts/test.sh --sanitize=tsan        # the TSan half only
#   bash scripts/test.sh [...] -- CTEST_ARGS    # e.g. -- -R Crawl
# A skipped test is neither passed nor failed: the summary ends with every skipped test
# and its reason, so "100% tests passed" never hides one. --expect-skips applies to the
# sanitizer runs too, each with its own summary.
#
# --sanitize=asan builds into build-asan/ with ASan + UBSan (any report aborts the test) and
# runs every suite that does not link LibTorch (core, db, codecs, crawler, detector,
# demo_booru, exporter, the fuzz corpus replays). --sanitize=tsan builds into build-tsan/
# with TSan and runs the crawler's and detector's tests with scripts/tsan.supp (not
# LbpCascadeTest.*: the LBP evaluator on one thread, nothing for TSan to see, and one of
# them ran past 10 minutes instrumented; the ASan run has them). The LibTorch stages
# (tagger, trainer, studio) and the e2e suite need the `moeforge` binary, whose LibTorch
# units are too costly to compile twice more on a small machine: no sanitizer build
# compiles a LibTorch unit, and tests that spawn the binary run the regular build's
# (uninstrumented; built first if needed) one; the code they run in-process is
# instrumented. CI (.ci/run) runs --sanitize=asan after the regular suite; TSan is not in
# CI (its build and run are too slow for CI's time budget; .ci/run's header has the figures).
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${BUILD_DIR:-build}
EXPECT_SKIPS=""
SANITIZE=0
CTEST_ARGS=()
while [ $# -gt 0 ]; do
  case "$1" in
    --expect-skips) EXPECT_SKIPS=$2; shift 2 ;;
    --sanitize) SANITIZE=all; shift ;;
    --sanitize=asan | --sanitize=tsan) SANITIZE=${1#--sanitize=}; shift ;;
    --) shift; CTEST_ARGS=("$@"); break ;;
    *) echo "test.sh: unknown argument $1 (see the header of scripts/test.sh)" >&2; exit 2 ;;
  esac
done
JOBS=${JOBS:-$(nproc)}
launcher=()
command -v ccache >/dev/null && launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache)

# run_ctest DIR ARGS...: ctest with a summary of skips; exit status 1 for a failure or an
# unexpected skip.
run_ctest() {
  local dir=$1
  shift
  local junit="$dir/ctest-junit.xml"
  local rc=0
  ctest --test-dir "$dir" --output-on-failure -j "$JOBS" --timeout 900 --output-junit "$(realpath "$junit")" "$@" ||
    rc=$?
  python3 scripts/ctest_skips.py "$junit" ${EXPECT_SKIPS:+--expect "$EXPECT_SKIPS"} || rc=1
  return "$rc"
}

if [ "$SANITIZE" = 0 ]; then
  [ -f "$BUILD_DIR/CMakeCache.txt" ] || cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo "${launcher[@]}"
  cmake --build "$BUILD_DIR" -j "$JOBS"
  run_ctest "$BUILD_DIR" "${CTEST_ARGS[@]}"
  exit $?
fi

# Sanitizer builds. The regular build provides the `moeforge` binary the e2e tests spawn.
[ -f "$BUILD_DIR/CMakeCache.txt" ] || cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo "${launcher[@]}"
cmake --build "$BUILD_DIR" -j "$JOBS" --target moeforge
bin=$(realpath "$BUILD_DIR/cli/moeforge")
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
# Suppressions for frames of uninstrumented libraries only; scripts/tsan.supp says why each.
export TSAN_OPTIONS="suppressions=$(realpath scripts/tsan.supp) ${TSAN_OPTIONS:-halt_on_error=1:second_deadlock_stack=1}"
rc=0

if [ "$SANITIZE" = all ] || [ "$SANITIZE" = asan ]; then
  # Every suite without LibTorch, built instrumented. The suites with it are registered in
  # build-asan/ too, as NAME_NOT_BUILT: they are left out by name (with the studio's load
  # test, a bench binary of the LibTorch side), so a new suite missing from this list
  # fails as NOT RUN instead of vanishing from the run.
  suites=(moeforge_core_tests moeforge_db_tests moeforge_codecs_tests moeforge_crawler_tests
          moeforge_detector_tests moeforge_demo_booru_tests moeforge_exporter_tests
          moeforge-fuzz-booru_page moeforge-fuzz-xml_reader moeforge-fuzz-html_links moeforge-fuzz-robots
          moeforge-fuzz-image_probe moeforge-fuzz-config moeforge-fuzz-filter moeforge-fuzz-demo_request)
  torch_suites='moeforge_(tagger|trainer|studio|e2e)_tests_NOT_BUILT|StudioBench\..*'
  cmake -S . -B build-asan -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DMOEFORGE_SANITIZE=address,undefined \
    -DMOEFORGE_BUILD_BENCH=OFF -DMOEFORGE_TEST_BIN="$bin" "${launcher[@]}" >/dev/null
  cmake --build build-asan -j "$JOBS" --target "${suites[@]}"
  echo "== ASan + UBSan: suites without LibTorch" >&2
  run_ctest build-asan -E "^($torch_suites)\$" "${CTEST_ARGS[@]}" || rc=1
fi

if [ "$SANITIZE" = all ] || [ "$SANITIZE" = tsan ]; then
  cmake -S . -B build-tsan -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DMOEFORGE_SANITIZE=thread \
    -DMOEFORGE_BUILD_BENCH=OFF -DMOEFORGE_TEST_BIN="$bin" "${launcher[@]}" >/dev/null
  cmake --build build-tsan -j "$JOBS" --target moeforge_crawler_tests moeforge_detector_tests
  echo "== TSan: the crawler's and detector's threaded tests" >&2
  run_ctest build-tsan -E '(_NOT_BUILT$|^fuzz_replay|^StudioBench|^LbpCascadeTest\.)' "${CTEST_ARGS[@]}" || rc=1
fi
exit "$rc"
