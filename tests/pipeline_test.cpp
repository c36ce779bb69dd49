// The walking skeleton end to end: `moeforge demo` and `moeforge run` on the real
// binaries against the demo booru on loopback, then the same again (nothing redone).
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <opencv2/imgcodecs.hpp>

#include "core/models.h"
#include "tests/e2e_util.h"

namespace moeforge::testing {
namespace {

bool HaveCascade() { return ResolveModel("lbpcascade_animeface").ok() && ResolveModel("yunet").ok(); }

nlohmann::json WorkspaceStatusJson(const std::string& ws) {
  Outcome r = Moeforge("status -w " + ws + " --json", true);
  EXPECT_EQ(r.status, 0);
  return nlohmann::json::parse(r.LastLine(), nullptr, false);
}

TEST(Pipeline, DemoRunsEndToEndAndLeavesASampleGrid) {
  if (!HaveCascade()) GTEST_SKIP() << "lbpcascade_animeface or yunet not on MOEFORGE_MODEL_PATH";
  std::string out = TempDir("demo");
  // A fixed port per test process: the re-run below must see the same source URL.
  // 32 px keeps the test short; the demo's own default is 64.
  std::string args = "demo --out " + out + " --posts 60 --steps 20 --train-minutes 0 --tag-epochs 3 --resolution 32 --port " +
                     std::to_string(20000 + getpid() % 20000);
  Outcome r = Moeforge(args);
  ASSERT_EQ(r.status, 0) << r.out;
  std::string png = out + "/sample.png";
  EXPECT_NE(r.LastLine().find(png), std::string::npos) << "the closing line says where the grid is: " << r.LastLine();
  // Its own eval, before the closing line.
  EXPECT_NE(r.out.find("eval: step 20, 512 generated faces judged by the workspace tagger: hair colour "),
            std::string::npos)
      << r.out;
  // The grid: one row per hair colour of the data, 8 faces a row, enlarged 4x at 32 px,
  // with a label column on the left.
  cv::Mat grid = cv::imread(png, cv::IMREAD_COLOR);
  ASSERT_FALSE(grid.empty()) << png;
  const int tile = 4 * 32 + 4 * 2;
  EXPECT_GT(grid.cols, 8 * tile) << "no label column";
  EXPECT_EQ((grid.rows - 8) % tile, 0);
  // As many rows as hair colours the run's data has (the default schema's first group).
  std::ifstream config_in(out + "/ws/runs/demo/config.json");
  auto config = nlohmann::json::parse(config_in, nullptr, false);
  ASSERT_FALSE(config.is_discarded());
  int colours = 0;
  for (int c = 0; c < 13; ++c) colours += config["tag_freq"][c].get<double>() > 0;
  EXPECT_GE(colours, 1);
  EXPECT_EQ((grid.rows - 8) / tile, colours);
  cv::Scalar mean, stddev;
  cv::meanStdDev(grid, mean, stddev);
  EXPECT_GT(stddev[0] + stddev[1] + stddev[2], 5.0) << "a flat grid: the generator produced nothing";

  nlohmann::json st = WorkspaceStatusJson(out + "/ws");
  ASSERT_FALSE(st.is_discarded());
  EXPECT_GE(st["posts"].value("stored", 0), 50) << st.dump();
  int64_t faces = 0;
  for (auto& [k, v] : st["faces"].items()) faces += v.get<int64_t>();
  EXPECT_GE(faces, 40) << st.dump();
  ASSERT_EQ(st["runs"].size(), 1u) << st.dump();
  EXPECT_EQ(st["runs"][0]["step"], 20);
  // The generator trained on the clean view: no faces of monochrome images.
  EXPECT_NE(r.out.find("view: "), std::string::npos) << r.out;
  Outcome views = Moeforge("view list -w " + out + "/ws", true);
  EXPECT_NE(views.out.find("clean"), std::string::npos) << views.out;
  EXPECT_NE(views.out.find("mono_score < 0.5"), std::string::npos) << views.out;

  // Again: every stage finds its work done.
  Outcome again = Moeforge(args + " --json", true);
  ASSERT_EQ(again.status, 0) << again.out;
  nlohmann::json st2 = WorkspaceStatusJson(out + "/ws");
  EXPECT_EQ(st2["posts"], st["posts"]);
  EXPECT_EQ(st2["faces"], st["faces"]);
  EXPECT_EQ(st2["runs"][0]["step"], 20);
}

TEST(Pipeline, RunReadsAConfigAndRejectsUnknownKeys) {
  if (!HaveCascade()) GTEST_SKIP() << "lbpcascade_animeface or yunet not on MOEFORGE_MODEL_PATH";
  std::string dir = TempDir("run");
  {
    std::ofstream bad(dir + "/bad.toml");
    bad << "workspace = '" << dir << "/ws'\n[train]\nstepz = 3\n";
  }
  Outcome b = Moeforge("run " + dir + "/bad.toml");
  EXPECT_EQ(b.status, 2) << b.out;
  EXPECT_NE(b.out.find("unknown key 'train.stepz'"), std::string::npos) << b.out;

  DemoBooruProcess booru("--posts 40 --seed 5");
  ASSERT_FALSE(booru.url().empty());
  {
    std::ofstream cfg(dir + "/run.toml");
    cfg << "workspace = '" << dir << "/ws'\n"
        << "[crawl]\nsource = 'danbooru'\nurl = '" << booru.url() << "'\nlimit = 40\n"
        << "[detect]\ncrop_size = 64\n[tag_train]\nepochs = 2\n"
        << "[view]\nname = 'sharp'\nwhere = 'sharpness > 0 AND mono_score < 0.5'\n"
        << "[train]\nrun = 'r'\nresolution = 32\nsteps = 10\nbatch = 8\ng_channels = 16\ng_blocks = 2\n"
        << "d_channels = 16\nd_blocks = 1\n"
        << "[sample]\ntags = 'blonde_hair blue_eyes'\nn = 4\nout = 'grid.png'\n";
  }
  Outcome r = Moeforge("run " + dir + "/run.toml --set train.steps=12");
  ASSERT_EQ(r.status, 0) << r.out;
  EXPECT_TRUE(std::filesystem::exists(dir + "/ws/grid.png")) << r.out;
  nlohmann::json st = WorkspaceStatusJson(dir + "/ws");
  EXPECT_EQ(st["runs"][0]["step"], 12) << "--set overrides the file";
  Outcome views = Moeforge("view list -w " + dir + "/ws", true);
  EXPECT_NE(views.out.find("sharp"), std::string::npos) << views.out;

  // A view over a column that does not exist stops the job before training, naming it.
  Outcome badview = Moeforge("run " + dir + "/run.toml --set train.steps=14 --set \"view.where=no_such_column > 1\"");
  EXPECT_NE(badview.status, 0) << badview.out;
  EXPECT_NE(badview.out.find("no_such_column"), std::string::npos) << badview.out;
  EXPECT_EQ(WorkspaceStatusJson(dir + "/ws")["runs"][0]["step"], 12) << "nothing trained after the failed view";
}

}  // namespace
}  // namespace moeforge::testing
