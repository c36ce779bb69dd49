#!/usr/bin/env bash
# Compiles and links moeforge's LibTorch code against a CUDA LibTorch 2.x on a machine that
# has neither a GPU nor the CUDA toolkit: Debian 13's libtorch-cuda-dev (PyTorch 2.6 built
# with CUDA 12, from the contrib section of Debian's archive), unpacked into WORK.
#
#   scripts/check-libtorch-cuda.sh [WORK]        (default WORK: /tmp/moeforge-libtorch-cuda)
#
# What it shows: every torch translation unit (trainer/, tagger/builtin/) compiles against
# the 2.6 headers, and the binaries that use them (moeforge, the trainer and tagger tests
# and benches) link against libtorch, libtorch_cpu, libtorch_cuda, libc10 and libc10_cuda 2.6:
# every symbol our code needs is defined there. What it cannot show: anything at run time.
# Those libraries need Debian 13's libstdc++ and glibc and the CUDA runtime, so their own
# dependencies are left unresolved at link time (--allow-shlib-undefined) and nothing is run.
# On a machine with the toolkit, configure with CMAKE_PREFIX_PATH pointing at the LibTorch
# (python3 -c 'import torch; print(torch.utils.cmake_prefix_path)') instead.
set -euo pipefail

SRC=$(cd "$(dirname "$0")/.." && pwd)
WORK=${1:-/tmp/moeforge-libtorch-cuda}
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
JOBS=${JOBS:-$(nproc)}
mkdir -p "$WORK/debs" "$WORK/root" "$WORK/cmake"

# The two packages' file names from trixie's contrib index.
if [[ ! -s "$WORK/Packages" ]]; then
  curl -fsS --retry 3 "$MIRROR/dists/trixie/contrib/binary-amd64/Packages.xz" | xz -dc > "$WORK/Packages.tmp"
  mv "$WORK/Packages.tmp" "$WORK/Packages"
fi
dev=$(awk '/^Package: libtorch-cuda-dev$/{p=1} p&&/^Filename:/{print $2; exit}' "$WORK/Packages")
lib=$(awk '/^Package: libtorch-cuda-dev$/{p=1} p&&/^Depends:/{print; exit}' "$WORK/Packages" |
      grep -o 'libtorch-cuda-[0-9.]*' | head -1)
libfile=$(awk -v pkg="$lib" '$0=="Package: "pkg{p=1} p&&/^Filename:/{print $2; exit}' "$WORK/Packages")
if [[ -z "$dev" || -z "$libfile" ]]; then
  echo "check-libtorch-cuda: libtorch-cuda-dev not found in trixie contrib at $MIRROR" >&2
  exit 1
fi
for f in "$dev" "$libfile"; do
  deb="$WORK/debs/$(basename "$f")"
  if [[ ! -s "$deb" ]]; then
    echo "fetching $(basename "$f")"
    curl -fsS --retry 3 -o "$deb.tmp" "$MIRROR/$f"
    mv "$deb.tmp" "$deb"
  fi
  dpkg-deb -x "$deb" "$WORK/root"
done
usr="$WORK/root/usr"
libdir="$usr/lib/x86_64-linux-gnu"
grep -E 'define TORCH_VERSION_(MAJOR|MINOR|PATCH)' "$usr/include/torch/csrc/api/include/torch/version.h"

# A TorchConfig.cmake of our own: the packaged one looks for the CUDA toolkit, which this
# check does without. libtorch_cuda is linked with --no-as-needed, as the packaged config
# does, so that its CUDA kernels register at load time.
cat > "$WORK/cmake/TorchConfig.cmake" <<EOF
add_library(torch INTERFACE IMPORTED)
set_target_properties(torch PROPERTIES
  INTERFACE_INCLUDE_DIRECTORIES "$usr/include;$usr/include/torch/csrc/api/include"
  INTERFACE_LINK_LIBRARIES "$libdir/libtorch.so;$libdir/libtorch_cpu.so;-Wl,--no-as-needed,$libdir/libtorch_cuda.so,--as-needed;$libdir/libc10_cuda.so;$libdir/libc10.so")
set(TORCH_LIBRARIES torch)
set(TORCH_FOUND TRUE)
EOF

# Test discovery runs the test binaries; here it waits for ctest (PRE_TEST), which is never run.
cmake -S "$SRC" -B "$WORK/build" -G Ninja -DTorch_DIR="$WORK/cmake" -DMOEFORGE_BUILD_BENCH=ON \
  -DCMAKE_GTEST_DISCOVER_TESTS_DISCOVERY_MODE=PRE_TEST \
  -DCMAKE_EXE_LINKER_FLAGS="-Wl,--allow-shlib-undefined -Wl,--unresolved-symbols=ignore-in-shared-libs" > "$WORK/cmake.log"
targets=(moeforge moeforge_trainer_tests moeforge_tagger_tests moeforge-train-bench moeforge-tag-bench moeforge-tag-eval)
ninja -C "$WORK/build" -j "$JOBS" "${targets[@]}"

# Each binary must load the 2.x libraries, libtorch_cuda (whose kernels register at load)
# included; libc10_cuda is dropped by --as-needed where nothing of ours calls it.
for t in moeforge trainer/moeforge_trainer_tests tagger/moeforge_tagger_tests; do
  bin=$(find "$WORK/build" -name "$(basename "$t")" -type f -perm -u+x | head -1)
  needed=$(readelf -d "$bin" | grep NEEDED | grep -o 'lib\(torch\|c10\)[a-z_]*\.so[.0-9]*' | sort -u | tr '\n' ' ')
  echo "$(basename "$bin"): $needed"
  [[ "$needed" == *libtorch_cuda.so.2* && "$needed" == *libtorch_cpu.so.2* ]] || {
    echo "check-libtorch-cuda: $(basename "$bin") is not linked to the CUDA LibTorch" >&2
    exit 1
  }
done
echo "check-libtorch-cuda: built against LibTorch $(grep -o '"[0-9.]*"' "$usr/include/torch/csrc/api/include/torch/version.h" | head -1) (CUDA) in $WORK/build; nothing was run"
