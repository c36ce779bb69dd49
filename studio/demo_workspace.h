// A small studio workspace made without crawling (tests, the browser test, the bench):
// illustrations of one to three synthetic faces each, with posts, source tags, detector
// and tagger rows as detect and tag leave them, two views, and optionally a tiny trained
// run (metrics, sample grids, snapshots, an eval.json). Not used by `moeforge serve`.
#pragma once

#include <string>

#include "core/status.h"

namespace moeforge::studio {

struct DemoWorkspaceOptions {
  int faces = 48;
  // Distinct crop files; faces beyond share them round-robin (a 50k-face workspace for the
  // bench need not write 50k PNGs: the pages' queries do not read them).
  int distinct_crops = 5000;
  bool train = true;       // a run named "tiny" (a few steps, 1 thread)
  int train_steps = 4;
  int resolution = 32;
  // The report's generator (64 channels, 16 residual blocks, z 128) instead of a toy one:
  // what generation latency is measured on.
  bool full_size_generator = false;
  int train_faces = 0;     // > 0: train on the first N faces only (view "train_subset")
};

// Creates WS at `root` (which must not hold a workspace yet).
Status MakeDemoWorkspace(const std::string& root, const DemoWorkspaceOptions& o);

}  // namespace moeforge::studio
