// moeforge-synthetic-faces WS N: a workspace of N synthetic tagged faces (see
// trainer/synthetic_faces.h), for trying train / sample / eval without the pipeline.
#include <cstdio>
#include <cstdlib>

#include "trainer/synthetic_faces.h"

int main(int argc, char** argv) {
  if (argc != 3 || std::atoi(argv[2]) < 1) {
    std::fprintf(stderr, "usage: moeforge-synthetic-faces WS N\n");
    return 2;
  }
  auto s = moeforge::trainer::MakeSyntheticFaceWorkspace(argv[1], std::atoi(argv[2]));
  if (!s.ok()) {
    std::fprintf(stderr, "moeforge-synthetic-faces: %s\n", s.ToString().c_str());
    return s.ExitCode();
  }
  std::printf("%s: %s faces\n", argv[1], argv[2]);
  return 0;
}
