// BlobStore: what Put() leaves on disk (the exact bytes under the content address, no
// temporary names, a damaged copy replaced) and that WhenDurable() callbacks all run, each
// once and after a flush that covers it, however they are gathered.
#include <sys/stat.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "core/hash.h"
#include "core/workspace.h"
#include "crawler/blob_store.h"

namespace fs = std::filesystem;
using namespace moeforge;

namespace {

class BlobStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("mf_blob_store_" + std::to_string(::getpid()));
    fs::remove_all(dir_);
    ws_ = std::make_unique<Workspace>(dir_.string());
    ASSERT_TRUE(ws_->CreateDirs().ok());
  }
  void TearDown() override { fs::remove_all(dir_); }

  // Every file under blobs/, relative.
  std::vector<std::string> Files() const {
    std::vector<std::string> out;
    for (auto& e : fs::recursive_directory_iterator(ws_->blobs_dir()))
      if (e.is_regular_file()) out.push_back(fs::relative(e.path(), ws_->blobs_dir()).string());
    return out;
  }

  fs::path dir_;
  std::unique_ptr<Workspace> ws_;
};

TEST_F(BlobStoreTest, PutLeavesExactlyTheBlobUnderItsAddress) {
  crawler::BlobStore store(*ws_);
  std::vector<std::string> shas;
  for (int i = 0; i < 40; ++i) {
    std::string data(1000 + 37 * i, static_cast<char>('a' + i % 26));
    data += std::to_string(i);
    std::string sha = Sha256Hex(data);
    auto t = store.Put(sha, data);
    ASSERT_TRUE(t.ok()) << t.status().ToString();
    EXPECT_EQ(*t, i + 1);
    auto stored = ReadFile(ws_->BlobPath(sha));
    ASSERT_TRUE(stored.ok());
    EXPECT_EQ(*stored, data);
    shas.push_back(sha);
  }
  // Nothing but the 40 blobs: no temporary names left behind.
  std::vector<std::string> files = Files();
  EXPECT_EQ(files.size(), 40u);
  for (const auto& f : files) EXPECT_EQ(f.find(".tmp"), std::string::npos) << f;
  EXPECT_TRUE(store.EnsureDurable(40).ok());

  // The same blob again: a no-op that still takes a ticket.
  std::string again(1000, 'a');
  again += "0";
  auto t = store.Put(shas[0], again);
  ASSERT_TRUE(t.ok());
  EXPECT_EQ(*t, 41);
  EXPECT_EQ(Files().size(), 40u);
}

TEST_F(BlobStoreTest, ADamagedCopyOfAnotherSizeIsReplaced) {
  std::string data(5000, 'x');
  std::string sha = Sha256Hex(data);
  std::string path = ws_->BlobPath(sha);
  fs::create_directories(fs::path(path).parent_path());
  { std::ofstream(path, std::ios::binary) << "truncated"; }
  crawler::BlobStore store(*ws_);
  ASSERT_TRUE(store.Put(sha, data).ok());
  auto stored = ReadFile(path);
  ASSERT_TRUE(stored.ok());
  EXPECT_EQ(*stored, data);
  std::vector<std::string> files = Files();
  ASSERT_EQ(files.size(), 1u);
  EXPECT_EQ(files[0].find(".tmp"), std::string::npos);
}

TEST_F(BlobStoreTest, EveryCallbackRunsOnceAfterAFlushThatCoversIt) {
  crawler::BlobStore store(*ws_);
  std::mutex mu;
  std::vector<int64_t> ran;
  constexpr int kBlobs = 300;
  for (int i = 0; i < kBlobs; ++i) {
    std::string data = "blob " + std::to_string(i);
    auto t = store.Put(Sha256Hex(data), data);
    ASSERT_TRUE(t.ok());
    int64_t ticket = *t;
    store.WhenDurable(ticket, [&, ticket] {
      // Covered by a finished flush when it runs: EnsureDurable() then has nothing to do.
      EXPECT_TRUE(store.EnsureDurable(ticket).ok());
      std::lock_guard<std::mutex> l(mu);
      ran.push_back(ticket);
    });
  }
  store.WaitCallbacks();
  ASSERT_EQ(ran.size(), static_cast<size_t>(kBlobs));
  std::sort(ran.begin(), ran.end());
  for (int i = 0; i < kBlobs; ++i) EXPECT_EQ(ran[static_cast<size_t>(i)], i + 1);
  // Gathered: fewer flushes than callbacks, and at least one.
  EXPECT_GE(store.flushes(), 1);
  EXPECT_LT(store.flushes(), kBlobs);
  // A callback for a ticket already covered runs at once, on the caller's thread.
  bool now = false;
  store.WhenDurable(kBlobs, [&] { now = true; });
  EXPECT_TRUE(now);
}

}  // namespace
