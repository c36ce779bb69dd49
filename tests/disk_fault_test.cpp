// Disk and filesystem faults against the real binary: a disk that fills up during crawl
// and detect, a read-only workspace, a truncated or damaged moeforge.db, a missing blob.
// Each must end with a clear error naming the file and a non-zero exit, leave
// `PRAGMA integrity_check` ok, lose no committed row, and a re-run after the fault is
// cleared must complete.
//
// The full and read-only disks are a small tmpfs mounted for the test, which needs root
// (CI runs as root); elsewhere those tests skip, visibly. Filling is done with a ballast
// file, so "clearing the fault" is deleting it, as a user would free space.
#include <sys/mount.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>

#include <gtest/gtest.h>

#include "db/db.h"
#include "tests/e2e_util.h"

namespace moeforge::testing {
namespace {

namespace fs = std::filesystem;

// A tmpfs of `bytes` at a fresh folder, unmounted at the end.
class SmallDisk {
 public:
  explicit SmallDisk(const std::string& name, int64_t bytes) {
    dir_ = TempDir("disk_" + name);
    std::string opts = "size=" + std::to_string(bytes);
    if (::geteuid() == 0 && ::mount("tmpfs", dir_.c_str(), "tmpfs", 0, opts.c_str()) == 0) mounted_ = true;
    else why_ = std::string("cannot mount a tmpfs (needs root): ") + std::strerror(errno);
  }
  ~SmallDisk() {
    if (mounted_) ::umount2(dir_.c_str(), MNT_DETACH);
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }
  bool ok() const { return mounted_; }
  const std::string& why() const { return why_; }
  const std::string& dir() const { return dir_; }
  int64_t Free() const {
    struct statvfs s {};
    ::statvfs(dir_.c_str(), &s);
    return static_cast<int64_t>(s.f_bavail) * static_cast<int64_t>(s.f_frsize);
  }
  // Leaves about `bytes` free by writing a ballast file.
  void FillLeaving(int64_t bytes) {
    int64_t n = Free() - bytes;
    std::ofstream out(dir_ + "/ballast", std::ios::binary | std::ios::app);
    std::string chunk(1 << 16, '\0');
    for (; n > 0; n -= static_cast<int64_t>(chunk.size()))
      out.write(chunk.data(), static_cast<std::streamsize>(std::min<int64_t>(n, chunk.size())));
  }
  void Clear() { fs::remove(dir_ + "/ballast"); }
  bool ReadOnly(bool ro) {
    return ::mount("tmpfs", dir_.c_str(), "tmpfs", MS_REMOUNT | (ro ? MS_RDONLY : 0), nullptr) == 0;
  }

 private:
  std::string dir_;
  std::string why_;
  bool mounted_ = false;
};

std::string IntegrityCheck(const std::string& ws) {
  db::OpenOptions o;
  o.read_only = true;
  auto db = db::Database::Open(ws + "/moeforge.db", o);
  if (!db.ok()) return db.status().ToString();
  auto st = (*db)->Prepare("PRAGMA integrity_check");
  if (!st.ok()) return st.status().ToString();
  std::string out;
  while (st->Step().value()) out += st->Text(0);
  return out;
}

// remote_id -> "state sha" of every post that has an outcome: the committed work.
std::map<std::string, std::string> Committed(const std::string& ws, const std::string& sql) {
  std::map<std::string, std::string> rows;
  auto db = db::Database::Open(ws + "/moeforge.db");
  EXPECT_TRUE(db.ok()) << db.status().ToString();
  if (!db.ok()) return rows;
  auto st = (*db)->Prepare(sql);
  EXPECT_TRUE(st.ok()) << st.status().ToString();
  while (st.ok() && st->Step().value()) rows[st->Text(0)] = st->Text(1);
  return rows;
}
const char* kPostsSql =
    "SELECT remote_id, state || ' ' || coalesce(image_sha256, '') FROM posts WHERE state <> 'pending'";
const char* kDetectSql = "SELECT image_sha256, state || ' ' || n_faces FROM detections_done";

int64_t Count(const std::string& ws, const std::string& sql) {
  auto db = db::Database::Open(ws + "/moeforge.db");
  return db.ok() ? (*db)->QueryInt(sql).value() : -1;
}

// Every row of `before` is in `after`; unchanged unless `same_value` is false (a crawl
// may later find a better copy of a stored image and keep that one instead: the post
// stays, its outcome stays decided).
void ExpectKept(const std::map<std::string, std::string>& before, const std::map<std::string, std::string>& after,
                bool same_value = true) {
  for (const auto& [k, v] : before) {
    auto it = after.find(k);
    ASSERT_NE(it, after.end()) << k << " was committed before the fault and is gone";
    if (same_value) EXPECT_EQ(it->second, v) << k;
  }
}

std::string Lower(std::string s) {
  for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

std::string Crawl(const std::string& ws, const std::string& url) {
  return "crawl -w " + ws + " --source danbooru --url " + url + " --quiet --page-limit 20";
}

const int kPosts = 60;

bool HaveCascade() { return std::system((Bin() + " models path lbpcascade_animeface >/dev/null 2>&1").c_str()) == 0; }

TEST(DiskFault, CrawlOnAFullDiskStopsNamingTheFileAndResumes) {
  SmallDisk disk("crawl", 64 << 20);
  if (!disk.ok()) GTEST_SKIP() << disk.why();
  DemoBooruProcess booru("--posts " + std::to_string(kPosts) + " --seed 5");
  ASSERT_FALSE(booru.url().empty());
  std::string ws = disk.dir() + "/ws";
  ASSERT_EQ(Moeforge("init " + ws).status, 0);
  disk.FillLeaving(2 << 20);  // about a third of the crawl's images fit

  Outcome full = Moeforge(Crawl(ws, booru.url()));
  EXPECT_NE(full.status, 0) << full.out;
  // The error names a file of the workspace and says the disk is full.
  EXPECT_NE(full.out.find(ws + "/"), std::string::npos) << full.out;
  EXPECT_TRUE(full.out.find("full") != std::string::npos || full.out.find("No space left") != std::string::npos)
      << full.out;
  std::printf("crawl on a full disk: %s\n", full.LastLine().c_str());
  EXPECT_EQ(IntegrityCheck(ws), "ok");
  auto committed = Committed(ws, kPostsSql);

  disk.Clear();
  Outcome again = Moeforge(Crawl(ws, booru.url()));
  ASSERT_EQ(again.status, 0) << again.out;
  EXPECT_EQ(IntegrityCheck(ws), "ok");
  auto after = Committed(ws, kPostsSql);
  ExpectKept(committed, after, /*same_value=*/false);
  EXPECT_EQ(after.size(), static_cast<size_t>(kPosts));
  // The same outcomes as a crawl of the same site that never met a full disk.
  std::string ref = TempDir("disk_crawl_ref") + "/ws";
  ASSERT_EQ(Moeforge("init " + ref).status, 0);
  ASSERT_EQ(Moeforge(Crawl(ref, booru.url())).status, 0);
  EXPECT_EQ(after, Committed(ref, kPostsSql));
  fs::remove_all(fs::path(ref).parent_path());
  // As many blob files as image rows naming one: none orphaned by the fault, none lost.
  int64_t files = 0;
  for (auto& e : fs::recursive_directory_iterator(ws + "/blobs")) files += e.is_regular_file();
  EXPECT_EQ(Count(ws, "SELECT count(*) FROM images WHERE blob_path IS NOT NULL"), files);
}

TEST(DiskFault, DetectOnAFullDiskStopsNamingTheFileAndResumes) {
  SmallDisk disk("detect", 64 << 20);
  if (!disk.ok()) GTEST_SKIP() << disk.why();
  if (!HaveCascade()) GTEST_SKIP() << "lbpcascade_animeface not on MOEFORGE_MODEL_PATH";
  DemoBooruProcess booru("--posts " + std::to_string(kPosts) + " --seed 6");
  std::string ws = disk.dir() + "/ws";
  ASSERT_EQ(Moeforge("init " + ws).status, 0);
  ASSERT_EQ(Moeforge(Crawl(ws, booru.url())).status, 0);
  int64_t images = Count(ws, "SELECT count(*) FROM images WHERE blob_path IS NOT NULL AND near_dup_of IS NULL");
  ASSERT_GT(images, 40);
  disk.FillLeaving(96 << 10);  // room for some crops and rows, not all

  Outcome full = Moeforge("detect -w " + ws + " --threads 2");
  EXPECT_NE(full.status, 0) << full.out;
  EXPECT_NE(full.out.find(ws + "/"), std::string::npos) << full.out;
  EXPECT_TRUE(full.out.find("full") != std::string::npos || full.out.find("No space left") != std::string::npos)
      << full.out;
  std::printf("detect on a full disk: %s\n", full.LastLine().c_str());
  EXPECT_EQ(IntegrityCheck(ws), "ok");
  EXPECT_LT(Count(ws, "SELECT count(*) FROM detections_done"), images) << "the disk did not fill during detect";
  // An image whose crop could not be written is recorded as failed with crop_write_error:
  // a fault of the workspace, which the next run retries (on a loaded machine a crop write
  // can hit the full disk before a commit does). Every other committed outcome is kept.
  auto committed = Committed(ws, std::string(kDetectSql) +
                                     " WHERE NOT (state = 'failed' AND error LIKE 'crop_write_error%')");

  disk.Clear();
  Outcome again = Moeforge("detect -w " + ws + " --threads 2");
  ASSERT_EQ(again.status, 0) << again.out;
  EXPECT_EQ(IntegrityCheck(ws), "ok");
  auto after = Committed(ws, kDetectSql);
  ExpectKept(committed, after);
  EXPECT_EQ(Count(ws, "SELECT count(*) FROM detections_done WHERE state = 'done'"), images);
  // Every face row has its crop files.
  auto db = db::Database::Open(ws + "/moeforge.db");
  ASSERT_TRUE(db.ok());
  auto st = (*db)->Prepare("SELECT path FROM face_crops");
  ASSERT_TRUE(st.ok());
  int crops = 0;
  while (st->Step().value()) {
    EXPECT_TRUE(fs::exists(ws + "/" + st->Text(0))) << st->Text(0);
    ++crops;
  }
  EXPECT_GT(crops, 0);
}

// Tag (with the tiny WD14 fixture, so no tagger training is needed), export, and a
// training checkpoint, each on a disk that fills up.
TEST(DiskFault, TagExportAndTrainCheckpointOnAFullDiskStopNamingTheFileAndResume) {
  SmallDisk disk("tag_export", 192 << 20);
  if (!disk.ok()) GTEST_SKIP() << disk.why();
  if (!HaveCascade()) GTEST_SKIP() << "lbpcascade_animeface not on MOEFORGE_MODEL_PATH";
  DemoBooruProcess booru("--posts 40 --seed 10");
  std::string ws = disk.dir() + "/ws";
  const std::string tagger = std::string("wd14:") + MOEFORGE_SOURCE_DIR + "/tests/fixtures/tagger/wd14_tiny";
  ASSERT_EQ(Moeforge("init " + ws).status, 0);
  ASSERT_EQ(Moeforge(Crawl(ws, booru.url())).status, 0);
  ASSERT_EQ(Moeforge("detect -w " + ws + " --threads 2").status, 0);
  int64_t faces = Count(ws, "SELECT count(*) FROM faces");
  ASSERT_GT(faces, 20);

  disk.FillLeaving(16 << 10);  // less than the tag rows and their WAL frames need
  Outcome full = Moeforge("tag -w " + ws + " --tagger " + tagger + " --batch 8");
  EXPECT_NE(full.status, 0) << full.out;
  EXPECT_NE(full.out.find(ws + "/"), std::string::npos) << full.out;
  EXPECT_TRUE(full.out.find("full") != std::string::npos || full.out.find("No space left") != std::string::npos)
      << full.out;
  std::printf("tag on a full disk: %s\n", full.LastLine().c_str());
  disk.Clear();  // SQLite cannot open a WAL database on a full disk even to read it
  EXPECT_EQ(IntegrityCheck(ws), "ok");
  const char* kTagged = "SELECT face_id || ' ' || tag, score FROM face_tags";
  auto committed = Committed(ws, kTagged);
  Outcome again = Moeforge("tag -w " + ws + " --tagger " + tagger + " --batch 8");
  ASSERT_EQ(again.status, 0) << again.out;
  ExpectKept(committed, Committed(ws, kTagged));
  EXPECT_EQ(Count(ws, "SELECT count(DISTINCT face_id) FROM face_tags"), faces);

  std::string out = disk.dir() + "/export";
  disk.FillLeaving(256 << 10);
  Outcome efull = Moeforge("export -w " + ws + " --format stylegan --out " + out);
  EXPECT_NE(efull.status, 0) << efull.out;
  EXPECT_NE(efull.out.find(out + "/"), std::string::npos) << efull.out;
  EXPECT_TRUE(efull.out.find("full") != std::string::npos || efull.out.find("No space left") != std::string::npos)
      << efull.out;
  std::printf("export on a full disk: %s\n", efull.LastLine().c_str());
  EXPECT_FALSE(fs::exists(out + "/dataset.zip")) << "a partial archive was left under the final name";
  EXPECT_EQ(IntegrityCheck(ws), "ok");
  disk.Clear();
  Outcome eagain = Moeforge("export -w " + ws + " --format stylegan --out " + out);
  ASSERT_EQ(eagain.status, 0) << eagain.out;
  EXPECT_GT(fs::file_size(out + "/dataset.zip"), 100000u);

  // A training checkpoint (tens of MB at 32 px) that does not fit: the run stops at the
  // checkpoint naming the file, leaves no partial checkpoint, and resumes once there is room.
  const std::string train = "train -w " + ws + " --resolution 32 --steps 4 --batch 8 --checkpoint-every 2 "
                            "--sample-every 2 --snapshot-every 2";
  disk.FillLeaving(24 << 20);
  Outcome tfull = Moeforge(train);
  EXPECT_NE(tfull.status, 0) << tfull.out;
  EXPECT_NE(tfull.out.find(ws + "/runs/run/checkpoint.pt"), std::string::npos) << tfull.out;
  EXPECT_NE(tfull.out.find("No space left"), std::string::npos) << tfull.out;
  std::printf("train checkpoint on a full disk: %s\n", tfull.LastLine().c_str());
  EXPECT_FALSE(fs::exists(ws + "/runs/run/checkpoint.pt"));
  int tmp_left = 0;
  for (auto& e : fs::directory_iterator(ws + "/runs/run")) tmp_left += e.path().string().find(".tmp.") != std::string::npos;
  EXPECT_EQ(tmp_left, 0) << "a partial checkpoint was left behind";
  disk.Clear();
  EXPECT_EQ(IntegrityCheck(ws), "ok");
  Outcome tagain = Moeforge(train + " --resume");
  ASSERT_EQ(tagain.status, 0) << tagain.out;
  EXPECT_TRUE(fs::exists(ws + "/runs/run/checkpoint.pt"));
  EXPECT_EQ(Count(ws, "SELECT step FROM runs WHERE name = 'run'"), 4);
}

TEST(DiskFault, AReadOnlyWorkspaceIsRefusedNamingTheDatabase) {
  SmallDisk disk("readonly", 64 << 20);
  if (!disk.ok()) GTEST_SKIP() << disk.why();
  if (!HaveCascade()) GTEST_SKIP() << "lbpcascade_animeface not on MOEFORGE_MODEL_PATH";
  DemoBooruProcess booru("--posts 20 --seed 7");
  std::string ws = disk.dir() + "/ws";
  ASSERT_EQ(Moeforge("init " + ws).status, 0);
  ASSERT_EQ(Moeforge(Crawl(ws, booru.url())).status, 0);
  auto committed = Committed(ws, kPostsSql);
  ASSERT_TRUE(disk.ReadOnly(true));
  for (const std::string& cmd : {Crawl(ws, booru.url()), "detect -w " + ws}) {
    Outcome r = Moeforge(cmd);
    EXPECT_NE(r.status, 0) << cmd << "\n" << r.out;
    EXPECT_NE(r.out.find(ws + "/"), std::string::npos) << cmd << "\n" << r.out;
    EXPECT_NE(Lower(r.out).find("read-only"), std::string::npos) << cmd << "\n" << r.out;
    std::printf("%s on a read-only workspace: %s\n", cmd.substr(0, cmd.find(' ')).c_str(), r.LastLine().c_str());
  }
  ASSERT_TRUE(disk.ReadOnly(false));
  EXPECT_EQ(IntegrityCheck(ws), "ok");
  Outcome again = Moeforge(Crawl(ws, booru.url()));
  ASSERT_EQ(again.status, 0) << again.out;
  auto after = Committed(ws, kPostsSql);
  ExpectKept(committed, after);
  EXPECT_EQ(after.size(), 20u);
}

// A damaged database is refused by every command with its path, and never "repaired" by
// writing more into it; putting the good file back lets the work go on.
TEST(DiskFault, ATruncatedOrDamagedDatabaseIsRefusedNamingIt) {
  DemoBooruProcess booru("--posts 20 --seed 8");
  std::string root = TempDir("corrupt_db");
  std::string ws = root + "/ws";
  ASSERT_EQ(Moeforge("init " + ws).status, 0);
  ASSERT_EQ(Moeforge(Crawl(ws, booru.url())).status, 0);
  // One file, no WAL beside it, so that the damage below is all there is.
  {
    auto db = db::Database::Open(ws + "/moeforge.db");
    ASSERT_TRUE(db.ok());
    ASSERT_TRUE((*db)->Exec("PRAGMA wal_checkpoint(TRUNCATE)").ok());
  }
  fs::copy_file(ws + "/moeforge.db", root + "/good.db");
  auto committed = Committed(ws, kPostsSql);
  const std::string db_path = ws + "/moeforge.db";
  struct Damage {
    const char* name;
    void (*apply)(const std::string&);
  } damages[] = {
      {"truncated to a third", [](const std::string& p) { fs::resize_file(p, fs::file_size(p) / 3); }},
      {"header overwritten", [](const std::string& p) {
         std::fstream f(p, std::ios::in | std::ios::out | std::ios::binary);
         f.write("this is not an sqlite database file", 35);
       }},
  };
  for (const auto& d : damages) {
    fs::remove(ws + "/moeforge.db-wal");
    fs::remove(ws + "/moeforge.db-shm");
    fs::copy_file(root + "/good.db", db_path, fs::copy_options::overwrite_existing);
    d.apply(db_path);
    auto damaged_size = fs::file_size(db_path);
    for (const std::string& cmd : {"status -w " + ws, Crawl(ws, booru.url()), "detect -w " + ws}) {
      Outcome r = Moeforge(cmd);
      EXPECT_NE(r.status, 0) << d.name << ": " << cmd << "\n" << r.out;
      EXPECT_NE(r.out.find(db_path), std::string::npos) << d.name << ": " << cmd << "\n" << r.out;
      EXPECT_TRUE(r.out.find("damaged") != std::string::npos || r.out.find("malformed") != std::string::npos)
          << d.name << ": " << cmd << "\n" << r.out;
      std::printf("%s, %s: %s\n", d.name, cmd.substr(0, cmd.find(' ')).c_str(), r.LastLine().c_str());
    }
    EXPECT_EQ(fs::file_size(db_path), damaged_size) << d.name << ": a command wrote into the damaged file";
  }
  // The fault cleared (the good copy restored): the crawl completes and keeps every row.
  fs::remove(ws + "/moeforge.db-wal");
  fs::remove(ws + "/moeforge.db-shm");
  fs::copy_file(root + "/good.db", db_path, fs::copy_options::overwrite_existing);
  Outcome again = Moeforge(Crawl(ws, booru.url()));
  ASSERT_EQ(again.status, 0) << again.out;
  EXPECT_EQ(IntegrityCheck(ws), "ok");
  auto after = Committed(ws, kPostsSql);
  ExpectKept(committed, after);
  EXPECT_EQ(after.size(), 20u);
  fs::remove_all(root);
}

TEST(DiskFault, AMissingBlobFailsDetectNamingItUntilItIsBack) {
  if (!HaveCascade()) GTEST_SKIP() << "lbpcascade_animeface not on MOEFORGE_MODEL_PATH";
  DemoBooruProcess booru("--posts 12 --seed 9");
  std::string root = TempDir("missing_blob");
  std::string ws = root + "/ws";
  ASSERT_EQ(Moeforge("init " + ws).status, 0);
  ASSERT_EQ(Moeforge(Crawl(ws, booru.url())).status, 0);
  std::string blob;
  {
    auto db = db::Database::Open(ws + "/moeforge.db");
    ASSERT_TRUE(db.ok());
    auto st = (*db)->Prepare("SELECT blob_path FROM images WHERE blob_path IS NOT NULL AND near_dup_of IS NULL LIMIT 1");
    ASSERT_TRUE(st.ok() && st->Step().value());
    blob = ws + "/" + st->Text(0);
  }
  fs::rename(blob, root + "/kept");
  int64_t images = Count(ws, "SELECT count(*) FROM images WHERE blob_path IS NOT NULL AND near_dup_of IS NULL");

  Outcome r = Moeforge("detect -w " + ws + " --threads 2");
  EXPECT_NE(r.status, 0) << r.out;
  EXPECT_NE(r.out.find(blob), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("missing"), std::string::npos) << r.out;
  std::printf("detect with a missing blob: %s\n", r.out.substr(r.out.find("moeforge detect:")).c_str());
  EXPECT_EQ(IntegrityCheck(ws), "ok");
  EXPECT_EQ(Count(ws, "SELECT count(*) FROM detections_done WHERE state = 'done'"), images - 1);

  // Still missing: still an error. Back in place: detect completes.
  EXPECT_NE(Moeforge("detect -w " + ws + " --threads 2").status, 0);
  fs::rename(root + "/kept", blob);
  Outcome again = Moeforge("detect -w " + ws + " --threads 2");
  ASSERT_EQ(again.status, 0) << again.out;
  EXPECT_EQ(Count(ws, "SELECT count(*) FROM detections_done WHERE state = 'done'"), images);
  fs::remove_all(root);
}

}  // namespace
}  // namespace moeforge::testing
