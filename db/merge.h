// `moeforge merge WS_OUT WS_IN...`: folds workspaces (e.g. the shards of a crawl, detect
// or tag run with --shard i/N) into one. Rows are matched by what they are, not by their
// row ids: a source by (kind, url), an image by SHA-256, a post by (source, remote id), a
// detector or tagger by (name, model SHA-256, parameters), a face by (detector, image,
// index), a tag row by (tagger, face, tag). What OUT already has wins; nothing is
// duplicated. An exact duplicate (same SHA-256) stored by posts in two inputs stays
// stored once: the later post becomes a 'duplicate' of it, as one crawl would have made
// it. Near-duplicate decisions (dHash) are each input's own (docs/scaling.md).
//
// Blobs and crops are hard-linked where OUT and the input share a filesystem (copied
// otherwise, or always with `copy`), each placed atomically before the rows that name it;
// an input's rows go in one transaction. So a merge killed at any moment (SIGKILL
// included) and run again ends as one that was never interrupted.
//
// Not merged: runs, metrics, views and stage history (each workspace's own).
#pragma once

#include <string>
#include <vector>

#include "core/status.h"
#include "core/workspace.h"
#include "db/stage_run.h"

namespace moeforge::db {

struct MergeOptions {
  bool copy = false;  // copy blobs and crops even where a hard link would do
};

// OUT is created when missing. Each input is opened (and migrated) as a workspace.
// summary.done = inputs merged; extra: rows added per table, files linked and copied.
Result<StageSummary> MergeWorkspaces(const Workspace& out, const std::vector<Workspace>& ins, const MergeOptions& o);

}  // namespace moeforge::db
