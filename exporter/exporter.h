// Writes a dataset view out in the formats other trainers read:
//   imagefolder  OUT/<class>/<face_id>.png, class = the decided tag of one exclusive group
//   captions     OUT/<face_id>.png + OUT/<face_id>.txt ("blonde_hair, blue_eyes, smile")
//   stylegan     OUT/dataset.zip: 00000/img<face_id>.png + dataset.json with each image's
//                tag vector as its label (StyleGAN2-ADA's --cond=1 layout)
//   webdataset   OUT/shard-000000.tar ...: <key>.png, <key>.txt, <key>.json per sample
// The tags are the view's tagger's decisions (TagSchema::Decide); every export also
// writes OUT/moeforge-export.json naming the workspace, view, tagger and schema.
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
};

Result<db::StageSummary> Export(const Workspace& ws, const ExportOptions& opts);

}  // namespace moeforge::exporter
