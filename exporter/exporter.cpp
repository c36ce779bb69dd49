#include "exporter/exporter.h"

#include <archive.h>
#include <archive_entry.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <optional>
#include <set>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "core/progress.h"
#include "db/dataset.h"

namespace fs = std::filesystem;

namespace moeforge::exporter {

namespace {

// libarchive's message plus the operating system's reason ("Write error" alone does not
// say that the disk is full).
std::string ArchiveError(struct archive* a) {
  std::string msg = archive_error_string(a) ? archive_error_string(a) : "unknown error";
  if (int e = archive_errno(a); e > 0) msg += std::string(" (") + std::strerror(e) + ")";
  return msg;
}


const char* kManifest = "moeforge-export.json";

// One archive (tar or zip) written entry by entry; closed on destruction. Entries carry
// no time, owner or mode beyond 0644, so the same entries give the same bytes.
class ArchiveWriter {
 public:
  static Result<std::unique_ptr<ArchiveWriter>> Open(const std::string& path, bool zip) {
    std::unique_ptr<ArchiveWriter> w(new ArchiveWriter());
    w->a_ = archive_write_new();
    int rc = zip ? archive_write_set_format_zip(w->a_) : archive_write_set_format_pax_restricted(w->a_);
    if (rc != ARCHIVE_OK || archive_write_open_filename(w->a_, path.c_str()) != ARCHIVE_OK)
      return Status::IoError("cannot write " + path + ": " + ArchiveError(w->a_));
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
      s = Status::IoError("writing " + name + " into " + path_ + ": " + ArchiveError(a_));
    archive_entry_free(e);
    return s;
  }
  Status Close() {
    int rc = archive_write_close(a_);
    Status s = rc == ARCHIVE_OK ? Status::Ok() : Status::IoError("closing " + path_ + ": " + ArchiveError(a_));
    archive_write_free(a_);
    a_ = nullptr;
    return s;
  }

 private:
  ArchiveWriter() = default;
  archive* a_ = nullptr;
  std::string path_;
};

bool SameFiles(const std::string& a, const std::string& b) {
  std::error_code ec1, ec2;
  auto na = fs::file_size(a, ec1), nb = fs::file_size(b, ec2);
  if (ec1 || ec2 || na != nb) return false;
  std::ifstream fa(a, std::ios::binary), fb(b, std::ios::binary);
  std::vector<char> ba(1 << 16), bb(1 << 16);
  while (fa && fb) {
    fa.read(ba.data(), static_cast<std::streamsize>(ba.size()));
    fb.read(bb.data(), static_cast<std::streamsize>(bb.size()));
    if (fa.gcount() != fb.gcount() || !std::equal(ba.begin(), ba.begin() + fa.gcount(), bb.begin())) return false;
  }
  return fa.eof() && fb.eof();
}

// The files of one export, relative to OUT: written only when their bytes change, and
// remembered so the next export can remove what it no longer yields.
class OutputFolder {
 public:
  explicit OutputFolder(std::string out) : out_(std::move(out)) {}

  Status Put(const std::string& rel, const std::string& data) {
    files_.insert(rel);
    std::string path = out_ + "/" + rel;
    std::error_code ec;
    if (fs::file_size(path, ec) == data.size() && !ec) {
      auto old = ReadFile(path);
      if (old.ok() && *old == data) {
        ++unchanged_;
        return Status::Ok();
      }
    }
    ++written_;
    // No fsync per file: an export is rerun rather than recovered, and thousands of
    // fsyncs would dominate its time.
    return WriteFileAtomic(path, data.data(), data.size(), /*fsync_file=*/false);
  }

  // An archive is built beside its final name and moved there only when it differs.
  std::string PartialPath(const std::string& rel) const { return out_ + "/" + rel + ".partial"; }
  Status CommitPartial(const std::string& rel) {
    files_.insert(rel);
    std::string path = out_ + "/" + rel;
    std::error_code ec;
    if (SameFiles(PartialPath(rel), path)) {
      fs::remove(PartialPath(rel), ec);
      ++unchanged_;
      return Status::Ok();
    }
    fs::rename(PartialPath(rel), path, ec);
    if (ec) return Status::IoError("cannot move " + PartialPath(rel) + " to " + path + ": " + ec.message());
    ++written_;
    return Status::Ok();
  }

  // Removes the files `previous` lists that this export did not put, and folders left
  // empty by that.
  void RemoveStale(const std::vector<std::string>& previous) {
    for (const auto& rel : previous) {
      if (files_.count(rel) || rel.find("..") != std::string::npos || rel.empty() || rel[0] == '/') continue;
      std::error_code ec;
      if (fs::remove(out_ + "/" + rel, ec)) ++removed_;
      fs::path dir = fs::path(rel).parent_path();
      while (!dir.empty()) {
        if (!fs::is_empty(out_ + "/" + dir.string(), ec) || ec) break;
        fs::remove(out_ + "/" + dir.string(), ec);
        dir = dir.parent_path();
      }
    }
  }

  std::vector<std::string> files() const { return {files_.begin(), files_.end()}; }
  int64_t written() const { return written_; }
  int64_t unchanged() const { return unchanged_; }
  int64_t removed() const { return removed_; }

 private:
  std::string out_;
  std::set<std::string> files_;
  int64_t written_ = 0, unchanged_ = 0, removed_ = 0;
};

// The files the previous export into `out` listed (none when there was none).
std::vector<std::string> PreviousFiles(const std::string& out) {
  auto text = ReadFile(out + "/" + kManifest);
  if (!text.ok()) return {};
  auto j = nlohmann::json::parse(*text, nullptr, false);
  std::vector<std::string> files;
  if (j.is_discarded() || !j.contains("files") || !j["files"].is_array()) return files;
  for (const auto& f : j["files"])
    if (f.is_string()) files.push_back(f.get<std::string>());
  return files;
}

// The tags the sites gave the posts of a face's image, sorted (every post of the image:
// duplicates point at one stored original).
class SourceTags {
 public:
  static Result<SourceTags> Prepare(db::Database& db) {
    SourceTags s;
    MF_ASSIGN_OR_RETURN(s.st_, db.Prepare("SELECT DISTINCT st.tag FROM faces f JOIN posts p ON p.image_sha256 = "
                                          "f.image_sha256 JOIN source_tags st ON st.post_id = p.id "
                                          "WHERE f.id = ? ORDER BY st.tag"));
    return s;
  }
  Result<std::vector<std::string>> Of(int64_t face_id) {
    st_.Reset();
    st_.Bind(1, face_id);
    std::vector<std::string> out;
    while (true) {
      MF_ASSIGN_OR_RETURN(bool row, st_.Step());
      if (!row) break;
      out.push_back(st_.Text(0));
    }
    st_.Reset();
    return out;
  }

 private:
  db::Stmt st_;
};

std::string Join(const std::vector<std::string>& tags) {
  std::string s;
  for (const auto& t : tags) s += (s.empty() ? "" : ", ") + t;
  return s;
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
  std::optional<SourceTags> source_tags;
  if (o.all_tags) {
    MF_ASSIGN_OR_RETURN(source_tags, SourceTags::Prepare(*database));
  }

  std::error_code ec;
  fs::create_directories(o.out, ec);
  if (ec) return Status::IoError("cannot create " + o.out + ": " + ec.message());
  auto start = std::chrono::steady_clock::now();
  db::StageSummary sum;
  sum.stage = "export";
  sum.params = {{"view", o.view}, {"tagger", ds.tagger}, {"format", o.format}, {"out", o.out}};
  MF_ASSIGN_OR_RETURN(int64_t run_id, db::BeginStageRun(*database, "export", sum.params));

  OutputFolder folder(o.out);
  std::vector<std::string> previous = PreviousFiles(o.out);
  std::unique_ptr<ArchiveWriter> archive;
  std::string archive_rel;
  auto close_archive = [&]() -> Status {
    if (!archive) return Status::Ok();
    MF_RETURN_IF_ERROR(archive->Close());
    archive.reset();
    return folder.CommitPartial(archive_rel);
  };
  auto open_archive = [&](const std::string& rel, bool zip) -> Status {
    MF_RETURN_IF_ERROR(close_archive());
    archive_rel = rel;
    MF_ASSIGN_OR_RETURN(archive, ArchiveWriter::Open(folder.PartialPath(rel), zip));
    return Status::Ok();
  };
  nlohmann::json labels = nlohmann::json::array();
  int shard = -1;
  std::unique_ptr<Progress> progress;
  if (!o.quiet) progress = std::make_unique<Progress>("export", static_cast<int64_t>(ds.size()));
  if (o.format == "stylegan") MF_RETURN_IF_ERROR(open_archive("dataset.zip", true));
  for (size_t i = 0; i < ds.size(); ++i) {
    if (progress) progress->Advance();
    auto png = ReadFile(ws.Abs(ds.crop_paths[i]));
    if (!png.ok()) {
      sum.Fail("missing_crop");
      continue;
    }
    std::vector<float> tv = ds.TagVector(i);
    std::vector<std::string> tags;
    for (size_t k = 0; k < tv.size(); ++k)
      if (tv[k] > 0.5f) tags.push_back(schema.tags()[k]);
    std::string key = fmt::format("{:08}", ds.face_ids[i]);
    Status s;
    if (o.format == "imagefolder") {
      std::string cls = "unknown";
      const auto& g = schema.groups()[static_cast<size_t>(class_group)];
      for (const auto& t : g.tags)
        if (tv[static_cast<size_t>(schema.IndexOf(t))] > 0.5f) cls = t;
      s = folder.Put(cls + "/" + key + ".png", *png);
    } else if (o.format == "captions") {
      std::vector<std::string> caption = tags;
      if (source_tags) {
        MF_ASSIGN_OR_RETURN(std::vector<std::string> extra, source_tags->Of(ds.face_ids[i]));
        for (auto& t : extra)
          if (std::find(caption.begin(), caption.end(), t) == caption.end()) caption.push_back(std::move(t));
      }
      s = folder.Put(key + ".png", *png);
      if (s.ok()) s = folder.Put(key + ".txt", Join(caption) + "\n");
    } else if (o.format == "stylegan") {
      std::string name = fmt::format("{:05}/img{}.png", i / 1000, key);
      s = archive->Add(name, *png);
      labels.push_back({name, tv});
    } else {  // webdataset
      if (static_cast<int>(i / static_cast<size_t>(o.shard_size)) != shard) {
        shard = static_cast<int>(i / static_cast<size_t>(o.shard_size));
        MF_RETURN_IF_ERROR(open_archive(fmt::format("shard-{:06}.tar", shard), false));
      }
      nlohmann::json meta = {{"face_id", ds.face_ids[i]}, {"tags", tags}, {"tag_vector", tv}, {"tagger", ds.tagger}};
      s = archive->Add(key + ".png", *png);
      if (s.ok()) s = archive->Add(key + ".txt", Join(tags));
      if (s.ok()) s = archive->Add(key + ".json", meta.dump());
    }
    if (!s.ok()) return s;
    ++sum.done;
  }
  if (o.format == "stylegan") MF_RETURN_IF_ERROR(archive->Add("dataset.json", nlohmann::json{{"labels", labels}}.dump()));
  MF_RETURN_IF_ERROR(close_archive());
  nlohmann::json manifest = {{"workspace", fs::absolute(ws.root()).lexically_normal().string()},
                             {"view", o.view},
                             {"tagger", ds.tagger},
                             {"schema", schema.name()},
                             {"tags", schema.tags()},
                             {"format", o.format},
                             {"all_tags", o.all_tags},
                             {"count", sum.done},
                             {"files", folder.files()}};
  folder.RemoveStale(previous);
  MF_RETURN_IF_ERROR(folder.Put(kManifest, manifest.dump(2) + "\n"));
  if (progress) progress->Finish();
  sum.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  sum.extra = {{"written", folder.written()}, {"unchanged", folder.unchanged()}, {"removed", folder.removed()},
               {"out", o.out}};
  MF_RETURN_IF_ERROR(db::FinishStageRun(*database, run_id, sum));
  return sum;
}

}  // namespace moeforge::exporter
