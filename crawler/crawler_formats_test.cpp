// Formats beyond what Debian's OpenCV 4.6 reads, from crawl to detect (issue 19): an
// animated GIF (its first frame) and an APNG (its default image) are stored and give
// crops; an AVIF is skipped by name, counted in the summary and not read again; a
// truncated GIF is recorded as corrupt. Fixtures: scripts/make_format_fixtures.py.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "core/workspace.h"
#include "crawler/crawler.h"
#include "crawler/test_util.h"

namespace moeforge::crawler {
namespace {

namespace fs = std::filesystem;
using testing_util::Binary;
using testing_util::CheckInvariants;
using testing_util::Env;
using testing_util::Spawn;
using testing_util::WaitExit;

int64_t Skips(const db::StageSummary& s, const std::string& reason) {
  auto it = s.extra.find("skipped_by_reason");
  return it != s.extra.end() && it->contains(reason) ? (*it)[reason].get<int64_t>() : 0;
}

TEST(CrawlFormats, GifApngStoredAvifSkippedByNameThenDetectCropsThem) {
  std::string bin = Binary();
  ASSERT_TRUE(fs::exists(bin)) << bin << " is not built (the moeforge target)";
  Env env("formats");
  const fs::path src = fs::path(env.dir + "_src");
  fs::remove_all(src);
  fs::create_directories(src);
  const fs::path fixtures = fs::path(MOEFORGE_SOURCE_DIR) / "tests/fixtures/formats";
  for (const char* f : {"animated.gif", "apng.png", "header.avif"}) fs::copy_file(fixtures / f, src / f);
  {
    auto gif = ReadFile((fixtures / "animated.gif").string());
    ASSERT_TRUE(gif.ok());
    std::ofstream(src / "truncated.gif", std::ios::binary) << gif->substr(0, 120);
  }

  CrawlOptions o;
  o.source = "dir";
  o.url = src.string();
  o.quiet = true;
  o.near_dup_threshold = 0;  // every file decoded for its hash; none linked to another
  auto s = Crawl(env.ws, o);
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  auto posts = env.Posts();
  EXPECT_EQ(posts["animated.gif"].first, "stored");
  EXPECT_EQ(posts["apng.png"].first, "stored");
  EXPECT_EQ(posts["header.avif"], std::make_pair(std::string("skipped"), std::string("avif")));
  EXPECT_EQ(posts["truncated.gif"], std::make_pair(std::string("failed"), std::string("corrupt")));
  EXPECT_EQ(s->done, 2) << s->ToLine();
  EXPECT_EQ(Skips(*s, "avif"), 1) << s->ToLine();
  EXPECT_EQ(s->failures["corrupt"], 1) << s->ToLine();
  EXPECT_EQ(env.Q("SELECT count(*) FROM images WHERE format='gif' AND width=20 AND height=16"), 1);
  CheckInvariants(env);

  // A second run reads none of them again.
  auto again = Crawl(env.ws, o);
  ASSERT_TRUE(again.ok()) << again.status().ToString();
  EXPECT_EQ(again->done, 0) << again->ToLine();
  EXPECT_EQ(Skips(*again, "avif"), 0) << again->ToLine();
  EXPECT_TRUE(again->failures.empty()) << again->ToLine();
  EXPECT_EQ(env.Posts()["header.avif"].first, "skipped");

  // Detect decodes both stored images (the GIF's first frame) and crops them.
  // The fixtures are tiny: faces from 1 px wide count, nothing is padding.
  ASSERT_EQ(WaitExit(Spawn({bin, "detect", "-w", env.dir, "--detector", "whole", "--crop-size", "16", "--min-face",
                            "1", "--margin", "0", "--threads", "1"})),
            0);
  EXPECT_EQ(env.Q("SELECT count(*) FROM detections_done WHERE state='done' AND n_faces=1"), 2);
  EXPECT_EQ(env.Q("SELECT count(*) FROM detections_done WHERE state<>'done'"), 0);
  auto db = env.Db();
  auto st = db->Prepare("SELECT crop_path FROM faces").value();
  int crops = 0;
  while (st.Step().value()) {
    EXPECT_TRUE(fs::exists(env.ws.Abs(st.Text(0)))) << st.Text(0);
    ++crops;
  }
  EXPECT_EQ(crops, 2);
  fs::remove_all(src);
}

}  // namespace
}  // namespace moeforge::crawler
