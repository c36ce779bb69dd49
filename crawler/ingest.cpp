#include "crawler/ingest.h"
#include "core/strings.h"

#include <algorithm>
#include <cctype>
#include <cstring>
#include <filesystem>

#include "codecs/decode.h"
#include "core/hash.h"
#include "crawler/digest.h"
#include "crawler/image_probe.h"

namespace moeforge::crawler {

namespace {

bool IsMd5(const std::string& s) {
  if (s.size() != 32) return false;
  for (char c : s)
    if (!std::isxdigit(static_cast<unsigned char>(c))) return false;
  return true;
}

// X-Robots-Tag: "noai", "noimageai", or "googlebot: noai" style per-agent forms, in any
// case, comma separated.
bool ForbidsAi(const std::string& header) {
  std::string h = AsciiLower(header);
  for (const char* word : {"noai", "noimageai"}) {
    size_t pos = 0;
    while ((pos = h.find(word, pos)) != std::string::npos) {
      bool left = pos == 0 || !std::isalnum(static_cast<unsigned char>(h[pos - 1]));
      size_t end = pos + std::strlen(word);
      bool right = end >= h.size() || !std::isalnum(static_cast<unsigned char>(h[end]));
      if (left && right) return true;
      pos = end;
    }
  }
  return false;
}

}  // namespace

void CrawlCounters::Skipped(const std::string& why, int64_t n) {
  skipped_ += n;
  std::lock_guard<std::mutex> l(mu_);
  skips_[why] += n;
}

void CrawlCounters::Replaced() {
  stored_--;
  Skipped("near_duplicate");
}

void CrawlCounters::Failed(const std::string& reason) {
  failed_++;
  std::lock_guard<std::mutex> l(mu_);
  failures_[reason]++;
}

void CrawlCounters::FillSummary(db::StageSummary& s) const {
  std::lock_guard<std::mutex> l(mu_);
  s.done = stored_;
  s.skipped = skipped_;
  s.failed = 0;
  s.failures.clear();
  for (const auto& [r, n] : failures_) s.Fail(r, n);
  s.extra["skipped_by_reason"] = skips_;
  s.extra["bytes"] = bytes_.load();
  s.extra["pages"] = pages_.load();
}

Ingestor::Ingestor(const Workspace& ws, db::BatchWriter& writer, Options opts, CrawlCounters& counters,
                   WorkPool* pool)
    : ws_(ws), writer_(writer), opts_(opts), counters_(counters), pool_(pool), blobs_(ws) {}

Status Ingestor::Load(db::Database& db) {
  MF_ASSIGN_OR_RETURN(db::Stmt st, db.Prepare(
      "SELECT sha256, phash, near_dup_of, blob_path, COALESCE(width, 0), COALESCE(height, 0), COALESCE(format, ''), "
      "bytes FROM images"));
  std::lock_guard<std::mutex> l(mu_);
  std::vector<std::string> linked;
  while (true) {
    MF_ASSIGN_OR_RETURN(bool row, st.Step());
    if (!row) break;
    std::string sha = st.Text(0);
    Claim c;
    c.submitted = true;
    c.have_phash = !st.IsNull(1);
    if (c.have_phash) c.phash = static_cast<uint64_t>(st.Int(1));
    if (!st.IsNull(2)) {
      c.link = st.Text(2);
      linked.push_back(sha);
    } else {
      c.link = sha;
      Analysis a;
      a.width = st.Int(4);
      a.height = st.Int(5);
      a.format = st.Text(6);
      c.quality = QualityOf(a, st.Int(7));
      if (c.have_phash && !st.IsNull(3)) index_.Add(c.phash, sha);
    }
    claims_[sha] = std::move(c);
  }
  for (const std::string& sha : linked) {
    Claim& c = claims_[sha];
    auto kept = claims_.find(c.link);
    if (kept == claims_.end()) continue;
    kept->second.members.push_back(sha);
    // A near duplicate's distance to its kept copy (1 when a hash is missing: "near").
    c.distance = c.have_phash && kept->second.have_phash ? std::max(1, Hamming(c.phash, kept->second.phash)) : 1;
  }
  return Status::Ok();
}

Ingestor::Quality Ingestor::QualityOf(const Analysis& a, int64_t bytes) {
  Quality q;
  q.pixels = a.width * a.height;
  q.lossless = a.format == "png" || a.format == "gif" || a.format == "bmp";
  q.bytes = bytes;
  return q;
}

bool Ingestor::Better(const Quality& a, const std::string& sha_a, const Quality& b, const std::string& sha_b) {
  if (a.pixels != b.pixels) return a.pixels > b.pixels;
  if (a.lossless != b.lossless) return a.lossless;
  // Of two lossy files with the same pixels, the larger is usually the less compressed.
  if (a.bytes != b.bytes) return a.bytes > b.bytes;
  return sha_a < sha_b;
}

int64_t Ingestor::superseded() const {
  std::lock_guard<std::mutex> l(mu_);
  return superseded_;
}

void Ingestor::RemoveSupersededBlobs() {
  std::vector<std::string> doomed;
  {
    std::lock_guard<std::mutex> l(mu_);
    doomed.swap(superseded_blobs_);
  }
  for (const auto& rel : doomed) {
    std::error_code ec;
    std::filesystem::remove(ws_.Abs(rel), ec);
  }
}

void Ingestor::Expect(int64_t seq) {
  std::lock_guard<std::mutex> l(mu_);
  outstanding_.insert(seq);
}

int64_t Ingestor::outstanding() const {
  std::lock_guard<std::mutex> l(mu_);
  return static_cast<int64_t>(outstanding_.size());
}

int64_t Ingestor::stored_originals() const { return static_cast<int64_t>(index_.size()); }

Ingestor::Analysis Ingestor::Analyse(const FetchedItem& item) {
  Analysis a;
  if (!item.fail_reason.empty()) {
    a.fail_reason = item.fail_reason;
    a.fail_detail = item.fail_detail;
    return a;
  }
  // The politeness policy: a file whose host says noai/noimageai is not kept.
  if (opts_.honour_x_robots && ForbidsAi(item.x_robots_tag)) {
    a.fail_reason = "noai";
    a.fail_detail = "X-Robots-Tag: " + item.x_robots_tag;
    return a;
  }
  ImageProbe p = ProbeImage(item.body.data(), item.body.size());
  if (p.format.empty()) {
    std::string ct = AsciiLower(item.content_type);
    bool says_image = ct.rfind("image/", 0) == 0 || ct.rfind("application/octet-stream", 0) == 0;
    a.fail_reason = (item.frontier_id != 0 && !says_image) ? "content_type" : "corrupt";
    a.fail_detail = "not an image (Content-Type '" + item.content_type + "')";
    return a;
  }
  a.format = p.format;
  if (std::string missing = codecs::MissingDecoder(p.format); !missing.empty()) {
    a.fail_reason = p.format;  // e.g. "avif": counted as a skip by that name
    a.fail_detail = missing;
    a.skip = true;
    return a;
  }
  a.width = p.width;
  a.height = p.height;
  if (p.width <= 0 || p.height <= 0) {
    a.fail_reason = "corrupt";
    a.fail_detail = "no dimensions in the " + p.format + " header";
    return a;
  }
  if (p.width * p.height > opts_.max_pixels) {
    a.fail_reason = "huge_dims";
    a.fail_detail = std::to_string(p.width) + "x" + std::to_string(p.height) + " exceeds the pixel limit";
    return a;
  }
  bool md5_verified = false;
  if (IsMd5(item.expect_md5)) {
    // Both digests in one pass (crawler/digest.h).
    Md5Sha256 d = Md5AndSha256(item.body);
    if (d.md5_hex != AsciiLower(item.expect_md5)) {
      a.fail_reason = "corrupt";
      a.fail_detail = "MD5 differs from the site's";
      return a;
    }
    md5_verified = true;
    a.sha = std::move(d.sha256_hex);
  } else {
    a.sha = Sha256Hex(item.body);
  }
  bool known;
  {
    std::lock_guard<std::mutex> l(mu_);
    known = claims_.count(a.sha) > 0;
  }
  // An exact duplicate needs no decode; everything else is decoded once, which both
  // proves the file is an image and gives the perceptual hash. With near-duplicate
  // detection off, a file whose MD5 matches the site's is exactly what the site holds and
  // is not decoded (the detector decodes it anyway).
  bool need_decode = opts_.near_dup_threshold >= 0 || !md5_verified;
  if (!known && need_decode) {
    auto h = DHashOfEncoded(item.body);
    if (!h.ok()) {
      a.fail_reason = "corrupt";
      a.fail_detail = "does not decode as " + p.format;
      return a;
    }
    a.phash = *h;
    a.have_phash = true;
  }
  return a;
}

void Ingestor::Process(FetchedItem item) {
  Analysis a = Analyse(item);
  if (item.fail_reason.empty()) counters_.Bytes(static_cast<int64_t>(item.body.size()));
  std::vector<Ready> stores;
  {
    std::lock_guard<std::mutex> l(mu_);
    int64_t seq = item.seq;
    ready_[seq] = Ready{std::move(item), std::move(a), ""};
    while (!outstanding_.empty()) {
      auto it = ready_.find(*outstanding_.begin());
      if (it == ready_.end()) break;
      Ready r = std::move(it->second);
      ready_.erase(it);
      outstanding_.erase(outstanding_.begin());
      DecideLocked(std::move(r), stores);
    }
  }
  if (!pool_) {
    for (auto& r : stores) StoreBlob(std::move(r));
    return;
  }
  for (auto& r : stores) {
    auto shared = std::make_shared<Ready>(std::move(r));
    pool_->Submit([this, shared] { StoreBlob(std::move(*shared)); });
  }
}

void Ingestor::DecideLocked(Ready r, std::vector<Ready>& stores) {
  const Analysis& a = r.a;
  if (!a.fail_reason.empty()) {
    SubmitFailLocked(r.item, a.fail_reason, a.fail_detail, a.skip);
    return;
  }
  auto known = claims_.find(a.sha);
  if (known == claims_.end() && !a.have_phash && opts_.near_dup_threshold >= 0) {
    // Known when analysed, but that claim was dropped since (its original failed to
    // store): cannot happen without a phash, so decode now.
    auto h = DHashOfEncoded(r.item.body);
    if (!h.ok()) {
      SubmitFailLocked(r.item, "corrupt", "does not decode");
      return;
    }
    r.a.phash = *h;
    r.a.have_phash = true;
  }
  if (known != claims_.end()) {
    // Exact duplicate (of a kept copy or of a near duplicate): link to the kept copy.
    std::string link = known->second.link;
    int distance = known->second.distance;
    auto shared = std::make_shared<FetchedItem>(std::move(r.item));
    Analysis an = r.a;
    WhenSubmittedLocked(link, [this, shared, an, link, distance](bool ok) {
      if (ok) SubmitLinkLocked(*shared, an, link, distance, false);  // else: pending, retried next run
    });
    return;
  }
  Quality q = QualityOf(r.a, static_cast<int64_t>(r.item.body.size()));
  if (opts_.near_dup_threshold >= 0 && r.a.have_phash) {
    auto m = index_.Find(a.phash, opts_.near_dup_threshold);
    if (m) {
      const std::string link = m->first;
      Claim& kept = claims_[link];
      if (Better(q, a.sha, kept.quality, link)) {
        // This copy replaces the group's kept one: the group follows it.
        Claim c;
        c.this_run = true;
        c.link = a.sha;
        c.phash = a.phash;
        c.have_phash = true;
        c.quality = q;
        c.members = std::move(kept.members);
        kept.members.clear();
        c.members.push_back(link);
        for (const std::string& sha : c.members) {
          auto it = claims_.find(sha);
          if (it == claims_.end()) continue;
          it->second.link = a.sha;
          it->second.distance = it->second.have_phash ? std::max(1, Hamming(it->second.phash, a.phash)) : 1;
        }
        index_.Remove(kept.phash, link);
        index_.Add(a.phash, a.sha);
        claims_[a.sha] = std::move(c);
        r.replaces = link;
        stores.push_back(std::move(r));
        return;
      }
      Claim c;
      c.this_run = true;
      c.link = link;
      c.distance = m->second;
      c.phash = a.phash;
      c.have_phash = true;
      kept.members.push_back(a.sha);
      claims_[a.sha] = c;
      auto shared = std::make_shared<FetchedItem>(std::move(r.item));
      Analysis an = r.a;
      int d = m->second;
      std::string sha = a.sha;
      WhenSubmittedLocked(link, [this, shared, an, link, d, sha](bool ok) {
        if (!ok) return;
        SubmitLinkLocked(*shared, an, link, d, true);
        MarkSubmittedLocked(sha);
      });
      return;
    }
  }
  Claim c;
  c.this_run = true;
  c.link = a.sha;
  c.phash = r.a.phash;
  c.have_phash = r.a.have_phash;
  c.quality = q;
  claims_[a.sha] = c;
  if (r.a.have_phash) index_.Add(r.a.phash, a.sha);
  stores.push_back(std::move(r));
}

void Ingestor::StoreBlob(Ready r) {
  const Analysis& a = r.a;
  Result<int64_t> ticket = blobs_.Put(a.sha, r.item.body);
  if (!ticket.ok()) {
    std::lock_guard<std::mutex> l(mu_);
    SubmitFailLocked(r.item, "io_error", ticket.status().ToString());
    // Whoever waited on this copy cannot link to it, and later copies are not matched to it.
    if (a.have_phash) index_.Remove(a.phash, a.sha);
    auto parked = std::move(claims_[a.sha].parked);
    claims_.erase(a.sha);
    for (auto& fn : parked) fn(false);
    return;
  }
  auto stored = std::make_shared<Ready>(std::move(r));
  int64_t t = *ticket;
  // The rows are submitted once the blob is durable (crawl/blob_store.h), so that the
  // writer never waits in syncfs with other rows queued behind them.
  blobs_.WhenDurable(t, [this, stored, t] {
    std::lock_guard<std::mutex> l(mu_);
    auto item = std::make_shared<FetchedItem>(std::move(stored->item));
    const Analysis& an = stored->a;
    std::string replaces = stored->replaces;
    if (replaces.empty()) {
      SubmitStoredLocked(item, an, t, "");
      return;
    }
    // The replaced copy's rows first: the re-pointing moves them.
    WhenSubmittedLocked(replaces, [this, item, an, t, replaces](bool ok) {
      SubmitStoredLocked(item, an, t, ok ? replaces : "");
    });
  });
}

void Ingestor::WaitStored() { blobs_.WaitCallbacks(); }

void Ingestor::SubmitStoredLocked(std::shared_ptr<FetchedItem> item, const Analysis& an, int64_t t,
                                  const std::string& replaces) {
  std::string rel = ws_.BlobPath(an.sha, true);
  std::string now = db::NowIso();
  BlobStore* blobs = &blobs_;
  // The near duplicates that followed the replaced copy to this one (by primary key: there
  // is no index on near_dup_of). Any still to be submitted name this copy themselves.
  std::vector<std::string> members;
  if (!replaces.empty()) {
    for (const std::string& sha : claims_[an.sha].members)
      if (sha != replaces) members.push_back(sha);
  }
  // What the rows need of the item: not its body, which is freed once the blob is written
  // rather than when the batch commits (a batch holds hundreds of rows).
  struct Fetch {
    int64_t bytes, post_id, frontier_id;
    int http_status, attempts;
  };
  Fetch item_row{static_cast<int64_t>(item->body.size()), item->post_id, item->frontier_id, item->http_status,
                 item->attempts};
  writer_.Submit([item = item_row, an, rel, now, t, blobs, replaces, members](db::Database& db) -> Status {
    // The blob reaches stable storage before the row naming it can commit.
    MF_RETURN_IF_ERROR(blobs->EnsureDurable(t));
    MF_ASSIGN_OR_RETURN(db::Stmt * ins, db.Cached(
        "INSERT OR IGNORE INTO images(sha256, bytes, width, height, format, phash, near_dup_of, blob_path, added_at) "
        "VALUES(?,?,?,?,?,?,NULL,?,?)"));
    ins->BindAll(an.sha, item.bytes, an.width, an.height, an.format,
                 static_cast<int64_t>(an.phash), rel, now);
    if (!an.have_phash) ins->Bind(6, nullptr);
    MF_RETURN_IF_ERROR(ins->Run());
    MF_ASSIGN_OR_RETURN(db::Stmt * up, db.Cached(
        "UPDATE posts SET image_sha256=?, content_sha256=?, dup_distance=NULL, state='stored', error=NULL, "
        "width=?, height=?, updated_at=? WHERE id=?"));
    MF_RETURN_IF_ERROR(up->BindAll(an.sha, an.sha, an.width, an.height, now, item.post_id).Run());
    if (item.frontier_id) {
      MF_ASSIGN_OR_RETURN(db::Stmt * fr, db.Cached(
          "UPDATE frontier SET state='done', http_status=?, error=NULL, attempts=attempts+?, updated_at=? WHERE id=?"));
      MF_RETURN_IF_ERROR(fr->BindAll(item.http_status, item.attempts, now, item.frontier_id).Run());
    }
    if (!replaces.empty()) {
      // In this same transaction, so that no commit shows a group with two kept copies.
      MF_ASSIGN_OR_RETURN(db::Stmt * follow, db.Cached(
          "UPDATE images SET near_dup_of=? WHERE sha256=? AND near_dup_of IS NOT NULL"));
      for (const std::string& sha : members) MF_RETURN_IF_ERROR(follow->BindAll(an.sha, sha).Run());
      MF_ASSIGN_OR_RETURN(db::Stmt * old, db.Cached(
          "UPDATE images SET near_dup_of=?1, blob_path=NULL WHERE sha256=?2"));
      MF_RETURN_IF_ERROR(old->BindAll(an.sha, replaces).Run());
      // Every post that showed the replaced copy (or a duplicate of it) now shows this one,
      // at the distance between what it served and this copy.
      MF_ASSIGN_OR_RETURN(db::Stmt * posts, db.Cached(
          "SELECT p.id, i.phash FROM posts p LEFT JOIN images i ON i.sha256 = p.content_sha256 WHERE p.image_sha256=?"));
      posts->Bind(1, replaces);
      std::vector<std::pair<int64_t, int>> moved;
      while (true) {
        MF_ASSIGN_OR_RETURN(bool row, posts->Step());
        if (!row) break;
        int d = posts->IsNull(1) || !an.have_phash ? 1
                                                   : std::max(1, Hamming(static_cast<uint64_t>(posts->Int(1)), an.phash));
        moved.emplace_back(posts->Int(0), d);
      }
      posts->Reset();
      MF_ASSIGN_OR_RETURN(db::Stmt * mv, db.Cached(
          "UPDATE posts SET image_sha256=?, dup_distance=?, state='duplicate', updated_at=? WHERE id=?"));
      for (const auto& [id, d] : moved) MF_RETURN_IF_ERROR(mv->BindAll(an.sha, d, now, id).Run());
    }
    return Status::Ok();
  });
  counters_.Stored();
  if (!replaces.empty()) {
    superseded_blobs_.push_back(ws_.BlobPath(replaces, true));
    superseded_++;
    if (claims_[replaces].this_run) counters_.Replaced();
  }
  MarkSubmittedLocked(an.sha);
}

void Ingestor::WhenSubmittedLocked(const std::string& sha, std::function<void(bool)> fn) {
  Claim& c = claims_[sha];
  if (c.submitted) {
    fn(true);
  } else {
    c.parked.push_back(std::move(fn));
  }
}

void Ingestor::MarkSubmittedLocked(const std::string& sha) {
  auto it = claims_.find(sha);
  if (it == claims_.end()) return;
  it->second.submitted = true;
  auto parked = std::move(it->second.parked);
  it->second.parked.clear();
  for (auto& fn : parked) fn(true);
}

void Ingestor::SubmitFailLocked(const FetchedItem& item, const std::string& reason, const std::string& detail,
                                bool skip) {
  if (skip) counters_.Skipped(reason);
  else counters_.Failed(reason);
  int64_t post_id = item.post_id, fid = item.frontier_id;
  int status = item.http_status, attempts = item.attempts;
  std::string now = db::NowIso(), state = skip ? "skipped" : "failed";
  writer_.Submit([=](db::Database& db) -> Status {
    MF_ASSIGN_OR_RETURN(db::Stmt * up,
                        db.Cached("UPDATE posts SET state=?, error=?, updated_at=? WHERE id=? AND state<>'stored'"));
    MF_RETURN_IF_ERROR(up->BindAll(state, reason, now, post_id).Run());
    if (fid) {
      MF_ASSIGN_OR_RETURN(db::Stmt * fr, db.Cached(
          "UPDATE frontier SET state=?, http_status=?, error=?, attempts=attempts+?, updated_at=? WHERE id=?"));
      MF_RETURN_IF_ERROR(
          fr->BindAll(state, status, detail.empty() ? reason : reason + ": " + detail, attempts, now, fid).Run());
    }
    return Status::Ok();
  });
}

void Ingestor::SubmitLinkLocked(const FetchedItem& item, const Analysis& an, const std::string& link, int distance,
                                bool insert_image_row) {
  counters_.Skipped(an.sha == link ? "duplicate" : "near_duplicate");
  int64_t post_id = item.post_id, fid = item.frontier_id;
  int status = item.http_status, attempts = item.attempts;
  int64_t bytes = static_cast<int64_t>(item.body.size());
  std::string now = db::NowIso();
  writer_.Submit([=](db::Database& db) -> Status {
    if (insert_image_row) {
      // Known content, not stored: no blob_path, near_dup_of names the original.
      MF_ASSIGN_OR_RETURN(db::Stmt * ins, db.Cached(
          "INSERT OR IGNORE INTO images(sha256, bytes, width, height, format, phash, near_dup_of, blob_path, added_at) "
          "VALUES(?,?,?,?,?,?,?,NULL,?)"));
      MF_RETURN_IF_ERROR(
          ins->BindAll(an.sha, bytes, an.width, an.height, an.format, static_cast<int64_t>(an.phash), link, now).Run());
    }
    MF_ASSIGN_OR_RETURN(db::Stmt * up, db.Cached(
        "UPDATE posts SET image_sha256=?, content_sha256=?, dup_distance=?, state='duplicate', error=NULL, "
        "width=?, height=?, updated_at=? WHERE id=?"));
    MF_RETURN_IF_ERROR(up->BindAll(link, an.sha, distance, an.width, an.height, now, post_id).Run());
    if (fid) {
      MF_ASSIGN_OR_RETURN(db::Stmt * fr, db.Cached(
          "UPDATE frontier SET state='done', http_status=?, error=NULL, attempts=attempts+?, updated_at=? WHERE id=?"));
      MF_RETURN_IF_ERROR(fr->BindAll(status, attempts, now, fid).Run());
    }
    return Status::Ok();
  });
}

}  // namespace moeforge::crawler
