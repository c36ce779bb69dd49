// The exporter, read back by an independent reader (tests/read_export.py: Python's
// zipfile, tarfile, json and zlib): counts, labels equal to the dataset's, images that
// decode, StyleGAN2 labels in order; the same view gives the same bytes, a second export
// rewrites nothing, and faces that leave the view leave the export.
#include "exporter/exporter.h"

#include <cstdio>
#include <filesystem>
#include <map>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "core/hash.h"
#include "db/test_workspace.h"

namespace moeforge::exporter {
namespace {

namespace fs = std::filesystem;

std::string Sh(const std::string& cmd) {
  std::string out;
  FILE* p = popen(cmd.c_str(), "r");
  if (p == nullptr) return out;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
  EXPECT_EQ(pclose(p), 0) << cmd;
  return out;
}

nlohmann::json ReadBack(const std::string& out, const std::string& format) {
  std::string text = Sh("python3 " MOEFORGE_SOURCE_DIR "/tests/read_export.py " + out + " " + format);
  auto j = nlohmann::json::parse(text, nullptr, false);
  EXPECT_FALSE(j.is_discarded()) << text;
  return j;
}

// Every file under `dir` with its bytes' hash.
std::map<std::string, std::string> Snapshot(const std::string& dir) {
  std::map<std::string, std::string> m;
  for (const auto& e : fs::recursive_directory_iterator(dir))
    if (e.is_regular_file()) m[fs::relative(e.path(), dir).string()] = Sha256Hex(*ReadFile(e.path().string()));
  return m;
}

class ExportTest : public ::testing::Test {
 protected:
  void SetUp() override {
    fs::create_directories(fx_.dir() + "/crops");
    for (int f = 1; f <= 6; ++f)
      Sh("python3 " MOEFORGE_SOURCE_DIR "/tests/make_png.py " + fx_.dir() + "/crops/" + std::to_string(f) +
         ".png 8 8 " + std::to_string(f * 40) + " 10 20");
    db::ViewInfo v{"d1", "", "builtin:t@1111", ""};
    v.detector = "cascade:lbp";
    ASSERT_TRUE(db::CreateView(fx_.db(), v).ok());
    auto ds = db::LoadDataset(fx_.db(), "d1", "");
    ASSERT_TRUE(ds.ok()) << ds.status().ToString();
    ds_ = std::move(ds).value();
    ASSERT_EQ(ds_.size(), 4u);
  }
  Result<db::StageSummary> Run(const std::string& format, const std::string& out, bool all_tags = false) {
    ExportOptions o;
    o.view = "d1";
    o.format = format;
    o.out = out;
    o.all_tags = all_tags;
    o.shard_size = 3;
    o.quiet = true;
    return Export(Workspace(fx_.dir()), o);
  }
  std::vector<std::string> Tags(size_t i) const {
    std::vector<std::string> tags;
    auto tv = ds_.TagVector(i);
    for (size_t k = 0; k < tv.size(); ++k)
      if (tv[k] > 0.5f) tags.push_back(ds_.schema.tags()[k]);
    return tags;
  }
  std::string Key(size_t i) const {
    char buf[16];
    std::snprintf(buf, sizeof buf, "%08lld", static_cast<long long>(ds_.face_ids[i]));
    return buf;
  }
  db::TestWorkspace fx_;
  db::Dataset ds_;
};

TEST_F(ExportTest, EachFormatReadsBackWithTheDatasetsLabels) {
  for (std::string format : {"imagefolder", "captions", "stylegan", "webdataset"}) {
    SCOPED_TRACE(format);
    std::string out = fx_.dir() + "/out-" + format;
    auto s = Run(format, out);
    ASSERT_TRUE(s.ok()) << s.status().ToString();
    EXPECT_EQ(s->done, 4);
    nlohmann::json r = ReadBack(out, format);
    ASSERT_EQ(r["samples"].size(), 4u) << r.dump();
    std::map<std::string, nlohmann::json> by_key;
    for (const auto& smp : r["samples"]) by_key[smp["key"].get<std::string>()] = smp;
    for (size_t i = 0; i < ds_.size(); ++i) {
      ASSERT_TRUE(by_key.count(Key(i))) << Key(i);
      const auto& smp = by_key[Key(i)];
      EXPECT_TRUE(smp["png"]["ok"].get<bool>()) << smp.dump();
      EXPECT_EQ(smp["png"]["width"], 8);
      if (format == "imagefolder") {
        std::string hair;
        for (const auto& t : Tags(i))
          if (t.find("_hair") != std::string::npos && t != "long_hair" && t != "short_hair" && t != "drill_hair") hair = t;
        EXPECT_EQ(smp["class"], hair) << Key(i);
      }
      if (format == "captions" || format == "webdataset") {
        EXPECT_EQ(smp["tags"], Tags(i)) << Key(i);
      }
      if (format == "stylegan" || format == "webdataset") {
        EXPECT_EQ(smp["label"], ds_.TagVector(i)) << Key(i);
      }
    }
    if (format == "stylegan") {
      std::vector<std::string> keys;
      for (size_t i = 0; i < ds_.size(); ++i) keys.push_back(Key(i));
      EXPECT_EQ(r["order"], keys) << "dataset.json labels in face order";
    }
    if (format == "webdataset") {
      EXPECT_TRUE(fs::exists(out + "/shard-000001.tar")) << "4 samples in shards of 3";
    }
  }
  // A known case, spelled out: face 1 is blonde, blue-eyed and smiling in tagger 1's view.
  EXPECT_EQ(Tags(0), (std::vector<std::string>{"blonde_hair", "smile", "blue_eyes"}));
}

TEST_F(ExportTest, SameViewSameBytesAndASecondExportRewritesNothing) {
  for (std::string format : {"imagefolder", "captions", "stylegan", "webdataset"}) {
    SCOPED_TRACE(format);
    std::string a = fx_.dir() + "/a-" + format, b = fx_.dir() + "/b-" + format;
    ASSERT_TRUE(Run(format, a).ok());
    auto before = Snapshot(a);
    auto mtime = fs::last_write_time(a + "/moeforge-export.json");
    auto again = Run(format, a);
    ASSERT_TRUE(again.ok());
    EXPECT_EQ(again->extra["written"], 0) << again->ToLine();
    EXPECT_EQ(again->extra["removed"], 0);
    EXPECT_GT(again->extra["unchanged"].get<int64_t>(), 0);
    EXPECT_EQ(Snapshot(a), before);
    EXPECT_EQ(fs::last_write_time(a + "/moeforge-export.json"), mtime);
    // Another folder, the same bytes (the manifest names its folder nowhere).
    ASSERT_TRUE(Run(format, b).ok());
    EXPECT_EQ(Snapshot(b), before);
  }
}

TEST_F(ExportTest, FacesLeavingTheViewLeaveTheExportAndOnlyChangesAreWritten) {
  std::string out = fx_.dir() + "/inc";
  ASSERT_TRUE(Run("captions", out).ok());
  {
    std::FILE* f = std::fopen((out + "/README.user").c_str(), "w");
    ASSERT_NE(f, nullptr);
    std::fputs("mine", f);
    std::fclose(f);
  }
  // Face 2 (40 px) leaves the view.
  db::ViewInfo v{"d1", "face_size >= 64", "builtin:t@1111", ""};
  v.detector = "cascade:lbp";
  ASSERT_TRUE(db::CreateView(fx_.db(), v).ok());
  auto s = Run("captions", out);
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(s->done, 3);
  EXPECT_EQ(s->extra["removed"], 2) << s->ToLine();
  EXPECT_EQ(s->extra["written"], 1) << "only the manifest changed: " << s->ToLine();
  EXPECT_FALSE(fs::exists(out + "/00000002.png"));
  EXPECT_FALSE(fs::exists(out + "/00000002.txt"));
  EXPECT_TRUE(fs::exists(out + "/00000001.png"));
  EXPECT_TRUE(fs::exists(out + "/README.user")) << "a file the export did not write stays";
  // A re-tag that changes one face's decision rewrites that face's caption only.
  ASSERT_TRUE(fx_.db().Exec("UPDATE face_tags SET score = 0.95 WHERE tagger_id = 1 AND face_id = 1 AND tag = 'glasses'").ok());
  auto t = Run("captions", out);
  ASSERT_TRUE(t.ok());
  EXPECT_EQ(t->extra["written"], 1) << t->ToLine();
  EXPECT_NE(ReadFile(out + "/00000001.txt")->find("glasses"), std::string::npos);
  // imagefolder: a face whose class changes moves, and its old folder goes when empty.
  std::string folder = fx_.dir() + "/folder";
  ASSERT_TRUE(Run("imagefolder", folder).ok());
  EXPECT_TRUE(fs::exists(folder + "/blonde_hair/00000001.png"));
  ASSERT_TRUE(fx_.db().Exec("UPDATE face_tags SET score = 0.99 WHERE tagger_id = 1 AND face_id = 1 AND tag = 'brown_hair'").ok());
  auto m = Run("imagefolder", folder);
  ASSERT_TRUE(m.ok());
  EXPECT_TRUE(fs::exists(folder + "/brown_hair/00000001.png"));
  EXPECT_FALSE(fs::exists(folder + "/blonde_hair")) << "emptied class folder removed";
}

TEST_F(ExportTest, AllTagsAddsThePostsSourceTagsToCaptions) {
  std::string out = fx_.dir() + "/all";
  ASSERT_TRUE(Run("captions", out, /*all_tags=*/true).ok());
  EXPECT_EQ(*ReadFile(out + "/00000001.txt"), "blonde_hair, smile, blue_eyes, solo\n");
  EXPECT_EQ(*ReadFile(out + "/00000004.txt"),
            "black_hair, smile, green_eyes, monochrome, solo, x'); DROP TABLE faces; --\n");
}

}  // namespace
}  // namespace moeforge::exporter
