// Writes a dataset view out in the formats other trainers read:
//   imagefolder  OUT/<class>/<face_id>.png, class = the decided tag of one exclusive group
//   captions     OUT/<face_id>.png + OUT/<face_id>.txt ("blonde_hair, blue_eyes, smile"),
//                kohya-ss's layout; with all_tags the posts' own tags follow the schema's
//   stylegan     OUT/dataset.zip: 00000/img<face_id>.png + dataset.json with each image's
//                tag vector as its label (StyleGAN2-ADA's --cond=1 layout)
//   webdataset   OUT/shard-000000.tar ...: <key>.png, <key>.txt, <key>.json per sample
// The tags are the view's tagger's decisions (TagSchema::Decide); every export also
// writes OUT/moeforge-export.json naming the workspace, view, tagger, schema and the
// files written.
//
// Exports are deterministic (the same view gives the same bytes: archive entries carry
// no times or owners) and incremental: a file already holding the bytes it would get is
// not rewritten, and files a previous export listed that the view no longer yields are
// removed. Files the manifest does not list are never touched.
#pragma once

#include <string>

#include "core/status.h"
#include "core/workspace.h"
#include "db/stage_run.h"

namespace moeforge::exporter {

struct ExportOptions {
  std::string view;            // "" = every face
  std::string tagger;          // "" = the view's tagger, else the newest
  std::string format;          // imagefolder|captions|stylegan|webdataset
  std::string out;             // output folder (created)
  std::string class_group = "hair_color";  // imagefolder: which exclusive group names the class
  int shard_size = 10000;      // webdataset: samples per tar
  bool all_tags = false;       // captions: the posts' source tags after the schema's
  bool quiet = false;          // no progress line
};

// Summary: done = faces exported; extra: written / unchanged / removed file counts.
Result<db::StageSummary> Export(const Workspace& ws, const ExportOptions& opts);

}  // namespace moeforge::exporter
