// The tag stage and the built-in tagger's training stage over a workspace.
#include <algorithm>
#include <cmath>
#include <filesystem>
#include <future>
#include <map>
#include <set>
#include <thread>

#include <opencv2/core/utility.hpp>
#include <opencv2/imgcodecs.hpp>
#include <tbb/parallel_for.h>

#include "core/shard.h"
#include "core/progress.h"
#include "core/tag_schema.h"
#include "db/db.h"
#include "tagger/backend.h"
#include "torch_common/cpu_autocast.h"
#include "tagger/builtin/train.h"
#include "tagger/tagger.h"

namespace moeforge::tagger {

namespace {

std::vector<cv::Mat> ReadCrops(const Workspace& ws, const std::vector<std::string>& paths) {
  std::vector<cv::Mat> out(paths.size());
  tbb::parallel_for(size_t{0}, paths.size(), [&](size_t i) {
    out[i] = cv::imread(ws.Abs(paths[i]), cv::IMREAD_COLOR);
  });
  return out;
}

// Posts whose tags say the picture shows more than one character.
const char* kMultiCharacterTags =
    "('multiple_girls','multiple_boys','2girls','3girls','4girls','5girls','6+girls','2boys','3boys',"
    "'1boy 1girl','comic','everyone')";

// The tagger's decisions for one face (TagSchema::Decide). A column the tagger cannot
// score (NaN, an external vocabulary without the word) is never its group's argmax.
std::vector<bool> DecideScores(const TagSchema& schema, std::vector<float> scores, const std::vector<float>& thresholds) {
  for (auto& s : scores)
    if (std::isnan(s)) s = -1.f;
  return schema.Decide(scores, thresholds);
}

}  // namespace

bool BinaryTagsKnown(const TagSchema& schema, const std::vector<std::string>& source_tags) {
  // A booru post carries a full tag list (1girl, solo, long_hair, ...): a binary tag it
  // lacks is a negative. A labelled folder that only names colours (mlds labels.csv:
  // hair_color, eye_color) says nothing about smiles or hats, so its binaries are left
  // out of the loss rather than taught as "never".
  for (const auto& tag : source_tags) {
    auto v = schema.Encode({tag});
    bool in_exclusive = false;
    for (size_t c = 0; c < v.size(); ++c)
      if (v[c] > 0 && schema.groups()[static_cast<size_t>(schema.group_of()[c])].exclusive) in_exclusive = true;
    if (!in_exclusive) return true;
  }
  return false;
}

nlohmann::json TagTrainParams(const TagTrainOptions& o) {
  return {{"epochs", o.epochs}, {"patience", o.patience}, {"input_size", o.input_size}, {"batch", o.batch},
          {"lr", o.lr}, {"width", o.width}, {"blocks", o.blocks}, {"pool", o.pool}, {"bf16", o.bf16}, {"val_fraction", o.val_fraction},
          {"seed", o.seed}, {"multi_character", o.multi_character}, {"augment", o.augment},
          {"label_smoothing", o.label_smoothing}, {"multi_instance", o.multi_instance}, {"flip_average", o.flip_average}, {"schema", o.schema},
          {"detector", o.detector}, {"max_faces", o.max_faces}};
}

Result<db::StageSummary> TrainTagger(const Workspace& ws, const TagTrainOptions& o) {
  if (o.epochs < 1 || o.batch < 2 || o.input_size < 16 || o.val_fraction < 0 || o.val_fraction >= 1 ||
      o.blocks < 1 || (o.input_size >> o.blocks) < 1)
    return Status::InvalidArgument(
        "tag train: need epochs >= 1, batch >= 2, input size >= 16, 0 <= val fraction < 1, 1 <= blocks with "
        "input size >= 2^blocks");
  MF_RETURN_IF_ERROR(ws.CheckExists());
  MF_ASSIGN_OR_RETURN(auto dbp, db::OpenWorkspace(ws));
  db::Database& db = *dbp;
  MF_ASSIGN_OR_RETURN(TagSchema schema, TagSchema::Load(o.schema));
  SetTorchThreads(o.threads);
  cv::setNumThreads(o.threads > 0 ? o.threads : -1);

  db::StageSummary sum;
  sum.stage = "tag-train";
  sum.params = TagTrainParams(o);
  // What they resolved to here: the schema's name, bf16 where the CPU has it.
  sum.params["schema"] = schema.name();
  sum.params["bf16"] = o.bf16 && torch_common::CpuHasBf16();
  MF_ASSIGN_OR_RETURN(int64_t run_id, db::BeginStageRun(db, "tag-train", sum.params));
  Progress clock("tag-train", 0, 1e9);

  // One face per single-character post: a `solo` post's best-scoring face, or the only
  // face of a post that no tag marks as showing several characters. Monochrome posts
  // teach nothing about colours and are left out.
  std::string sql = std::string(R"SQL(
    WITH cand AS (
      SELECT f.id AS face_id, f.crop_path,
             (SELECT min(p2.id) FROM posts p2 WHERE p2.image_sha256 = f.image_sha256) AS post_id,
             count(*) OVER (PARTITION BY f.image_sha256, f.detector_id) AS n_faces,
             row_number() OVER (PARTITION BY f.image_sha256, f.detector_id
                                ORDER BY f.score DESC, f.id) - 1 AS rank
      FROM faces f JOIN detectors d ON d.id = f.detector_id
      WHERE f.crop_path IS NOT NULL AND (?1 = '' OR d.name = ?1))
    SELECT c.face_id, c.crop_path, c.post_id, c.n_faces,
           EXISTS(SELECT 1 FROM source_tags st WHERE st.post_id = c.post_id AND st.tag = 'solo') AS solo,
           EXISTS(SELECT 1 FROM source_tags st WHERE st.post_id = c.post_id AND st.tag IN )SQL") +
                    kMultiCharacterTags + R"SQL() AS multi,
           EXISTS(SELECT 1 FROM source_tags st WHERE st.post_id = c.post_id
                  AND st.tag IN ('monochrome','greyscale','grayscale')) AS mono,
           c.rank
    FROM cand c WHERE c.post_id IS NOT NULL ORDER BY c.face_id)SQL";
  MF_ASSIGN_OR_RETURN(db::Stmt q, db.Prepare(sql));
  q.Bind(1, o.detector);
  std::vector<int64_t> face_ids, post_ids;
  std::vector<std::string> paths;
  std::vector<bool> singles;
  int64_t candidates = 0;
  while (true) {
    MF_ASSIGN_OR_RETURN(bool row, q.Step());
    if (!row) break;
    ++candidates;
    bool solo = q.Int(4) != 0, multi = q.Int(5) != 0, mono = q.Int(6) != 0;
    int64_t n_faces = q.Int(3), rank = q.Int(7);
    bool single = solo ? rank == 0 : (n_faces == 1 && !multi);
    // A solo post's other detections are not characters; the faces of a post showing
    // several are negatives for every tag it lacks (LabelFromPostTags).
    if (mono || (!single && (solo || !o.multi_character))) continue;
    face_ids.push_back(q.Int(0));
    paths.push_back(q.Text(1));
    post_ids.push_back(q.Int(2));
    singles.push_back(single);
  }
  if (o.max_faces > 0 && static_cast<int>(face_ids.size()) > o.max_faces) {
    face_ids.resize(static_cast<size_t>(o.max_faces));
    paths.resize(static_cast<size_t>(o.max_faces));
    post_ids.resize(static_cast<size_t>(o.max_faces));
    singles.resize(static_cast<size_t>(o.max_faces));
  }
  sum.skipped = candidates - static_cast<int64_t>(face_ids.size());
  if (face_ids.empty())
    return Status::InvalidArgument("tag train: no face crops of single-character posts in " + ws.root() +
                                   " (run crawl and detect first)");

  std::map<int64_t, std::vector<std::string>> post_tags;
  {
    MF_ASSIGN_OR_RETURN(db::Stmt* tq, db.Cached("SELECT tag FROM source_tags WHERE post_id = ?"));
    for (int64_t pid : std::set<int64_t>(post_ids.begin(), post_ids.end())) {
      tq->Reset();
      tq->Bind(1, pid);
      auto& tags = post_tags[pid];
      while (true) {
        MF_ASSIGN_OR_RETURN(bool row, tq->Step());
        if (!row) break;
        tags.push_back(tq->Text(0));
      }
    }
  }
  auto mats = ReadCrops(ws, paths);
  std::vector<LabeledCrop> crops;
  int64_t n_multi = 0;
  for (size_t i = 0; i < mats.size(); ++i) {
    if (mats[i].empty()) {
      sum.Fail("unreadable_crop");
      continue;
    }
    const auto& tags = post_tags[post_ids[i]];
    LabeledCrop c = LabelFromPostTags(schema, tags, singles[i], BinaryTagsKnown(schema, tags));
    c.bgr = mats[i];
    c.split_key = std::to_string(post_ids[i]);
    n_multi += !singles[i];
    crops.push_back(std::move(c));
  }

  const TrainCoreOptions co = CoreOptions(o);
  double t0 = clock.elapsed_s();
  MF_ASSIGN_OR_RETURN(TrainOutcome res, TrainOnCrops(schema, crops, co));
  double train_s = clock.elapsed_s() - t0;
  std::string out = o.out.empty() ? ws.models_dir() + "/builtin-tagger.pt" : o.out;
  MF_RETURN_IF_ERROR(res.model->Save(out));

  sum.done = static_cast<int64_t>(crops.size());
  sum.seconds = clock.elapsed_s();
  // The full validation report (per-tag F1, confusion) sits beside the model; the
  // summary line carries the headline figures.
  std::string report_path = out + ".val.json";
  std::string report = nlohmann::json{{"model_sha256", res.model->sha256()}, {"val_faces", res.n_val},
                                      {"val_posts", res.val_keys}, {"val_curve", res.val_curve},
                                      {"best_epoch", res.best_epoch}, {"report", res.val.ToJson()},
                                      {"text", res.val.ToText(schema)}}
                           .dump(1);
  MF_RETURN_IF_ERROR(WriteFileAtomic(report_path, report.data(), report.size()));
  nlohmann::json acc = nlohmann::json::object();
  for (const auto& g : res.val.groups) acc[g.group] = std::round(g.accuracy() * 1e4) / 1e4;
  double min_f1 = 1;
  for (const auto& t : res.val.tags) min_f1 = std::min(min_f1, t.f1());
  sum.extra = {{"model", out}, {"sha256", res.model->sha256()}, {"train_faces", res.n_train},
               {"val_faces", res.n_val}, {"multi_character_faces", n_multi}, {"epochs_run", res.epochs_run},
               {"best_epoch", res.best_epoch}, {"train_seconds", std::round(train_s * 10) / 10},
               {"val_accuracy", acc}};
  // No binary F1 when the posts only named colours (BinaryTagsKnown).
  if (!res.val.tags.empty()) sum.extra["val_min_f1"] = std::round(min_f1 * 1e3) / 1e3;
  MF_RETURN_IF_ERROR(db::FinishStageRun(db, run_id, sum));
  return sum;
}

Result<db::StageSummary> Tag(const Workspace& ws, const TagOptions& o) {
  if (o.batch < 1) return Status::InvalidArgument("tag: --batch must be >= 1");
  MF_RETURN_IF_ERROR(ws.CheckExists());
  MF_ASSIGN_OR_RETURN(auto backend, OpenTagger(o.tagger, o.schema));
  const TagSchema& schema = backend->schema();
  const size_t T = static_cast<size_t>(schema.size());
  std::vector<float> thresholds = backend->thresholds();
  if (o.thresholds.size() == 1) thresholds.assign(T, o.thresholds[0]);
  else if (o.thresholds.size() == T) thresholds = o.thresholds;
  else if (!o.thresholds.empty())
    return Status::InvalidArgument("tag: --threshold takes one value or one per schema tag (" + std::to_string(T) + ")");
  for (float t : thresholds)
    if (!(t >= 0 && t <= 1)) return Status::InvalidArgument("tag: thresholds must lie in [0, 1]");
  SetTorchThreads(o.threads);
  cv::setNumThreads(o.threads > 0 ? o.threads : -1);

  nlohmann::json params = backend->params();
  params["thresholds"] = thresholds;
  MF_ASSIGN_OR_RETURN(auto dbp, db::OpenWorkspace(ws));
  db::Database& db = *dbp;

  db::StageSummary sum;
  sum.stage = "tag";
  sum.params = {{"tagger", o.tagger}, {"batch", o.batch}, {"detector", o.detector}, {"limit", o.limit}};
  MF_ASSIGN_OR_RETURN(int64_t run_id, db::BeginStageRun(db, "tag", sum.params));

  // The tagger's row: name + model hash + parameters; a new threshold is a new tagger.
  int64_t tagger_id = 0;
  MF_RETURN_IF_ERROR(db.Transaction([&]() -> Status {
    MF_ASSIGN_OR_RETURN(db::Stmt * ins, db.Cached(
        "INSERT OR IGNORE INTO taggers(name, model_sha256, params_json, schema_toml, created_at) VALUES(?,?,?,?,?)"));
    ins->BindAll(backend->name(), backend->model_sha256(), params.dump(), schema.ToToml(), db::NowIso());
    MF_RETURN_IF_ERROR(ins->Run());
    MF_ASSIGN_OR_RETURN(db::Stmt * sel, db.Cached(
        "SELECT id FROM taggers WHERE name = ? AND model_sha256 = ? AND params_json = ?"));
    sel->BindAll(backend->name(), backend->model_sha256(), params.dump());
    MF_ASSIGN_OR_RETURN(bool row, sel->Step());
    if (!row) return Status::Internal("tagger row vanished");
    tagger_id = sel->Int(0);
    sel->Reset();
    // The thresholds it decides with, beside its name: NULL for the tags of exclusive
    // groups (argmax), so v_face_tags shows why each row is present or not.
    MF_ASSIGN_OR_RETURN(db::Stmt * th, db.Cached(
        "INSERT OR REPLACE INTO tagger_thresholds(tagger_id, tag, threshold) VALUES(?,?,?)"));
    for (size_t c = 0; c < T; ++c) {
      th->Bind(1, tagger_id).Bind(2, schema.tags()[c]);
      if (schema.groups()[static_cast<size_t>(schema.group_of()[c])].exclusive) th->Bind(3, nullptr);
      else th->Bind(3, static_cast<double>(thresholds[c]));
      MF_RETURN_IF_ERROR(th->Run());
    }
    return Status::Ok();
  }));

  std::string sql =
      "SELECT f.id, f.crop_path, f.image_sha256 FROM faces f JOIN detectors d ON d.id = f.detector_id "
      "WHERE f.crop_path IS NOT NULL AND (?1 = '' OR d.name = ?1) "
      "AND NOT EXISTS (SELECT 1 FROM face_tags ft WHERE ft.tagger_id = ?2 AND ft.face_id = f.id) ORDER BY f.id";
  MF_ASSIGN_OR_RETURN(const Shard shard, Shard::Parse(o.shard));
  if (o.limit > 0 && shard.whole()) sql += " LIMIT " + std::to_string(o.limit);
  std::vector<int64_t> ids;
  std::vector<std::string> paths;
  {
    MF_ASSIGN_OR_RETURN(db::Stmt q, db.Prepare(sql));
    q.Bind(1, o.detector).Bind(2, tagger_id);
    while (o.limit <= 0 || static_cast<int64_t>(ids.size()) < o.limit) {
      MF_ASSIGN_OR_RETURN(bool row, q.Step());
      if (!row) break;
      if (!shard.Owns(q.Text(2))) continue;  // --shard i/N: a face of another machine's image
      ids.push_back(q.Int(0));
      paths.push_back(q.Text(1));
    }
  }
  MF_ASSIGN_OR_RETURN(int64_t total, db.QueryInt("SELECT count(*) FROM faces WHERE crop_path IS NOT NULL"));
  sum.skipped = o.detector.empty() && o.limit == 0 ? total - static_cast<int64_t>(ids.size()) : 0;

  Progress progress("tag", static_cast<int64_t>(ids.size()), o.quiet ? 1e9 : 5.0);
  {
    db::BatchWriter writer(db);
    const size_t batch = static_cast<size_t>(o.batch);
    auto load = [&](size_t start) {
      std::vector<std::string> p(paths.begin() + static_cast<long>(start),
                                 paths.begin() + static_cast<long>(std::min(paths.size(), start + batch)));
      return ReadCrops(ws, p);
    };
    // Decode the next batch while this one is scored.
    std::future<std::vector<cv::Mat>> next;
    if (!ids.empty()) next = std::async(std::launch::async, load, size_t{0});
    for (size_t start = 0; start < ids.size(); start += batch) {
      std::vector<cv::Mat> mats = next.get();
      if (start + batch < ids.size()) next = std::async(std::launch::async, load, start + batch);
      std::vector<cv::Mat> good;
      std::vector<int64_t> good_ids;
      for (size_t i = 0; i < mats.size(); ++i) {
        if (mats[i].empty()) {
          sum.Fail("unreadable_crop");
        } else {
          good.push_back(mats[i]);
          good_ids.push_back(ids[start + i]);
        }
      }
      MF_ASSIGN_OR_RETURN(auto scores, backend->Score(good));
      for (size_t i = 0; i < good.size(); ++i) {
        int64_t face_id = good_ids[i];
        std::vector<float> row = std::move(scores[i]);
        std::vector<bool> present = DecideScores(schema, row, thresholds);
        // One operation per face: all of a face's rows commit together.
        MF_RETURN_IF_ERROR(writer.Submit([face_id, row, present, tagger_id, &schema](db::Database& d) -> Status {
          MF_ASSIGN_OR_RETURN(db::Stmt * ins, d.Cached(
              "INSERT OR REPLACE INTO face_tags(tagger_id, face_id, tag, score, present) VALUES(?,?,?,?,?)"));
          for (size_t c = 0; c < row.size(); ++c) {
            if (std::isnan(row[c])) continue;
            ins->BindAll(tagger_id, face_id, schema.tags()[c], static_cast<double>(row[c]),
                         static_cast<int64_t>(present[c]));
            MF_RETURN_IF_ERROR(ins->Run());
          }
          return Status::Ok();
        }));
        ++sum.done;
      }
      progress.Advance(static_cast<int64_t>(mats.size()));
    }
    MF_RETURN_IF_ERROR(writer.Flush());
  }
  progress.Finish();
  sum.seconds = progress.elapsed_s();
  sum.extra = {{"tagger_id", tagger_id}, {"tagger", backend->name()}, {"model_sha256", backend->model_sha256()}};
  MF_RETURN_IF_ERROR(db::FinishStageRun(db, run_id, sum));
  return sum;
}

}  // namespace moeforge::tagger
