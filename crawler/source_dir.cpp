// The folder source: one post per image file (remote id: the path relative to the
// folder), tags from a labels CSV or .txt sidecars (crawler/labels.h). Files go through
// the same checks and storage as downloads.
#include "crawler/source.h"
#include "core/strings.h"
#include "core/workspace.h"

#include <algorithm>
#include <cstdio>
#include <filesystem>

#include "crawler/frontier.h"
#include "crawler/labels.h"

namespace moeforge::crawler {

namespace {

namespace fs = std::filesystem;

bool IsImageFile(const fs::path& p) {
  std::string e = AsciiLower(p.extension().string());
  // .avif too: recorded as skipped by name (no decoder in this build), not passed over unseen.
  return e == ".jpg" || e == ".jpeg" || e == ".png" || e == ".gif" || e == ".webp" || e == ".bmp" || e == ".avif";
}

class DirSource : public PostSource {
 public:
  Status Run(Frontier& f) override;
  bool fetches() const override { return false; }
};

Status DirSource::Run(Frontier& f) {
  const CrawlOptions& o = f.options();
  fs::path root(o.url);
  std::error_code ec;
  if (!fs::is_directory(root, ec)) return Status::InvalidArgument("--url " + o.url + " is not a folder");
  std::string labels_path = o.labels;
  if (labels_path.empty()) {
    for (const char* name : {"labels.csv", "tags.csv"})
      if (fs::exists(root / name)) labels_path = (root / name).string();
  }
  LabelTable labels;
  if (!labels_path.empty()) {
    MF_ASSIGN_OR_RETURN(labels, ReadLabelsCsv(labels_path));
  }
  std::fprintf(stderr, "crawl: folder %s; tags from %s\n", o.url.c_str(),
               labels_path.empty() ? ".txt sidecars" : labels_path.c_str());
  std::vector<std::string> files;
  for (auto it = fs::recursive_directory_iterator(root, ec); it != fs::recursive_directory_iterator(); it.increment(ec)) {
    if (ec) break;
    if (it->is_regular_file() && IsImageFile(it->path())) files.push_back(fs::relative(it->path(), root).string());
  }
  std::sort(files.begin(), files.end());
  if (o.limit > 0 && static_cast<int64_t>(files.size()) > o.limit) files.resize(static_cast<size_t>(o.limit));
  f.progress().set_total(static_cast<int64_t>(files.size()));
  f.set_window(64);
  for (size_t start = 0; start < files.size(); start += 1000) {
    std::vector<NewPost> batch;
    for (size_t i = start; i < std::min(files.size(), start + 1000); ++i) {
      NewPost p;
      p.remote_id = files[i];
      p.file_ext = AsciiLower(fs::path(files[i]).extension().string().substr(1));
      if (p.file_ext == "jpeg") p.file_ext = "jpg";
      std::vector<std::string> tags;
      auto lab = labels.find(files[i]);
      if (lab == labels.end()) lab = labels.find(fs::path(files[i]).filename().string());
      if (lab != labels.end()) {
        tags = lab->second.tags;
        p.meta_json = lab->second.meta_json;
      } else {
        for (const auto& side : {(root / files[i]).string() + ".txt",
                                 (root / fs::path(files[i]).replace_extension(".txt")).string()}) {
          auto t = ReadFile(side);
          if (t.ok()) {
            tags = SplitTags(*t);
            break;
          }
        }
      }
      p.local_path = (root / files[i]).string();
      for (auto& t : tags) p.tags.emplace_back(t, "");
      batch.push_back(std::move(p));
    }
    MF_RETURN_IF_ERROR(f.Yield(std::move(batch)));
  }
  f.Drain();
  return f.writer().Flush();
}

}  // namespace

std::unique_ptr<PostSource> MakeDirSource() { return std::make_unique<DirSource>(); }

}  // namespace moeforge::crawler
