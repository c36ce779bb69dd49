#include "exporter/exporter.h"

#include <archive.h>
#include <archive_entry.h>

#include <chrono>
#include <filesystem>
#include <memory>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "core/progress.h"
#include "db/dataset.h"

namespace fs = std::filesystem;

namespace moeforge::exporter {

namespace {

// One archive (tar or zip) written entry by entry; closed on destruction.
class ArchiveWriter {
 public:
  static Result<std::unique_ptr<ArchiveWriter>> Open(const std::string& path, bool zip) {
    std::unique_ptr<ArchiveWriter> w(new ArchiveWriter());
    w->a_ = archive_write_new();
    int rc = zip ? archive_write_set_format_zip(w->a_) : archive_write_set_format_pax_restricted(w->a_);
    if (rc != ARCHIVE_OK || archive_write_open_filename(w->a_, path.c_str()) != ARCHIVE_OK)
      return Status::IoError("cannot write " + path + ": " + archive_error_string(w->a_));
    w->path_ = path;
    return w;
  }
  ~ArchiveWriter() {
    if (a_ != nullptr) {
      archive_write_close(a_);
      archive_write_free(a_);
    }
  }
  Status Add(const std::string& name, const std::string& data) {
    archive_entry* e = archive_entry_new();
    archive_entry_set_pathname(e, name.c_str());
    archive_entry_set_size(e, static_cast<la_int64_t>(data.size()));
    archive_entry_set_filetype(e, AE_IFREG);
    archive_entry_set_perm(e, 0644);
    archive_entry_set_mtime(e, 0, 0);  // reproducible archives
    Status s;
    if (archive_write_header(a_, e) != ARCHIVE_OK ||
        archive_write_data(a_, data.data(), data.size()) != static_cast<la_ssize_t>(data.size()))
      s = Status::IoError("writing " + name + " into " + path_ + ": " + archive_error_string(a_));
    archive_entry_free(e);
    return s;
  }
  Status Close() {
    int rc = archive_write_close(a_);
    Status s = rc == ARCHIVE_OK ? Status::Ok() : Status::IoError("closing " + path_ + ": " + archive_error_string(a_));
    archive_write_free(a_);
    a_ = nullptr;
    return s;
  }

 private:
  ArchiveWriter() = default;
  archive* a_ = nullptr;
  std::string path_;
};

Status WriteFile(const std::string& path, const std::string& data) {
  return WriteFileAtomic(path, data.data(), data.size());
}

}  // namespace

Result<db::StageSummary> Export(const Workspace& ws, const ExportOptions& o) {
  const std::vector<std::string> formats = {"imagefolder", "captions", "stylegan", "webdataset"};
  if (std::find(formats.begin(), formats.end(), o.format) == formats.end())
    return Status::InvalidArgument("--format must be one of imagefolder, captions, stylegan, webdataset (got '" +
                                   o.format + "')");
  if (o.out.empty()) return Status::InvalidArgument("--out is required");
  if (o.shard_size < 1) return Status::InvalidArgument("--shard-size must be at least 1");
  MF_ASSIGN_OR_RETURN(auto database, db::OpenWorkspace(ws));
  MF_ASSIGN_OR_RETURN(db::Dataset ds, db::LoadDataset(*database, o.view, o.tagger));
  const TagSchema& schema = ds.schema;
  int class_group = -1;
  for (size_t g = 0; g < schema.groups().size(); ++g)
    if (schema.groups()[g].name == o.class_group) class_group = static_cast<int>(g);
  if (o.format == "imagefolder" && (class_group < 0 || !schema.groups()[static_cast<size_t>(class_group)].exclusive))
    return Status::InvalidArgument("--class-group '" + o.class_group + "' is not an exclusive group of schema " +
                                   schema.name());

  std::error_code ec;
  fs::create_directories(o.out, ec);
  if (ec) return Status::IoError("cannot create " + o.out + ": " + ec.message());
  auto start = std::chrono::steady_clock::now();
  db::StageSummary sum;
  sum.stage = "export";
  sum.params = {{"view", o.view}, {"tagger", ds.tagger}, {"format", o.format}, {"out", o.out}};
  MF_ASSIGN_OR_RETURN(int64_t run_id, db::BeginStageRun(*database, "export", sum.params));

  std::unique_ptr<ArchiveWriter> archive;
  nlohmann::json labels = nlohmann::json::array();
  int shard = -1;
  Progress progress("export", static_cast<int64_t>(ds.size()));
  for (size_t i = 0; i < ds.size(); ++i) {
    auto png = ReadFile(ws.Abs(ds.crop_paths[i]));
    if (!png.ok()) {
      sum.Fail("missing_crop");
      progress.Advance();
      continue;
    }
    std::vector<float> tv = ds.TagVector(i);
    std::vector<std::string> tags;
    for (size_t k = 0; k < tv.size(); ++k)
      if (tv[k] > 0.5f) tags.push_back(schema.tags()[k]);
    std::string caption;
    for (const auto& t : tags) caption += (caption.empty() ? "" : ", ") + t;
    std::string key = fmt::format("{:08}", ds.face_ids[i]);
    Status s;
    if (o.format == "imagefolder") {
      std::string cls = "unknown";
      const auto& g = schema.groups()[static_cast<size_t>(class_group)];
      for (const auto& t : g.tags)
        if (tv[static_cast<size_t>(schema.IndexOf(t))] > 0.5f) cls = t;
      s = WriteFile(o.out + "/" + cls + "/" + key + ".png", *png);
    } else if (o.format == "captions") {
      s = WriteFile(o.out + "/" + key + ".png", *png);
      if (s.ok()) s = WriteFile(o.out + "/" + key + ".txt", caption + "\n");
    } else if (o.format == "stylegan") {
      if (!archive) {
        MF_ASSIGN_OR_RETURN(archive, ArchiveWriter::Open(o.out + "/dataset.zip", true));
      }
      std::string name = fmt::format("{:05}/img{}.png", i / 1000, key);
      s = archive->Add(name, *png);
      labels.push_back({name, tv});
    } else {  // webdataset
      if (static_cast<int>(i / static_cast<size_t>(o.shard_size)) != shard) {
        if (archive) MF_RETURN_IF_ERROR(archive->Close());
        shard = static_cast<int>(i / static_cast<size_t>(o.shard_size));
        MF_ASSIGN_OR_RETURN(archive, ArchiveWriter::Open(fmt::format("{}/shard-{:06}.tar", o.out, shard), false));
      }
      nlohmann::json meta = {{"face_id", ds.face_ids[i]}, {"tags", tags}, {"tag_vector", tv}, {"tagger", ds.tagger}};
      s = archive->Add(key + ".png", *png);
      if (s.ok()) s = archive->Add(key + ".txt", caption);
      if (s.ok()) s = archive->Add(key + ".json", meta.dump());
    }
    if (!s.ok()) return s;
    ++sum.done;
    progress.Advance();
  }
  if (o.format == "stylegan") {
    if (!archive) {
      MF_ASSIGN_OR_RETURN(archive, ArchiveWriter::Open(o.out + "/dataset.zip", true));
    }
    MF_RETURN_IF_ERROR(archive->Add("dataset.json", nlohmann::json{{"labels", labels}}.dump()));
  }
  if (archive) MF_RETURN_IF_ERROR(archive->Close());
  nlohmann::json manifest = {{"workspace", fs::absolute(ws.root()).string()}, {"view", o.view},
                             {"tagger", ds.tagger}, {"schema", schema.name()}, {"tags", schema.tags()},
                             {"format", o.format}, {"count", sum.done}};
  MF_RETURN_IF_ERROR(WriteFile(o.out + "/moeforge-export.json", manifest.dump(2) + "\n"));
  progress.Finish();
  sum.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  MF_RETURN_IF_ERROR(db::FinishStageRun(*database, run_id, sum));
  return sum;
}

}  // namespace moeforge::exporter
