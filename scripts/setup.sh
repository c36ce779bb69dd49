#!/usr/bin/env bash
# Sets up moeforge on Debian 12: installs the Debian packages in
# scripts/debian-packages.txt, builds into build/, and fetches the models the demo
# needs (`moeforge models pull --demo`; offline, it finds them on MOEFORGE_MODEL_PATH).
#   bash scripts/setup.sh            # as root, or with sudo available
#   SKIP_APT=1 bash scripts/setup.sh # packages already there
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${BUILD_DIR:-build}

if [ "${SKIP_APT:-0}" != 1 ]; then
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO=sudo
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -q
  # shellcheck disable=SC2046
  $SUDO apt-get install -y -q --no-install-recommends $(grep -v '^\s*#' scripts/debian-packages.txt)
fi

cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo
# LibTorch units take >1 GiB each to compile: one job per 3 GiB of memory, at most nproc.
mem_gib=$(awk '/MemTotal/ {print int($2 / 1048576)}' /proc/meminfo)
jobs=$(( mem_gib / 3 )); [ "$jobs" -ge 1 ] || jobs=1
[ "$jobs" -le "$(nproc)" ] || jobs=$(nproc)
cmake --build "$BUILD_DIR" -j "$jobs"

"$BUILD_DIR/cli/moeforge" models pull --demo
echo "moeforge is built: $BUILD_DIR/cli/moeforge (try: $BUILD_DIR/cli/moeforge demo)"
