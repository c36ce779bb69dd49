// The demo booru server: the render cache, the routes of the three dialects and the
// image files with their faults (demo_booru/faults.h). cpp-httplib serves it from a worker
// pool with keep-alive; the cache renders each post once, on first use.
#include "demo_booru/server.h"
#include "core/http_server.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <mutex>
#include <thread>
#include <unordered_map>

#include <httplib.h>
#include <tbb/parallel_for.h>
#include <tbb/task_arena.h>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include "core/tsan.h"
#include "core/workspace.h"
#include "demo_booru/server_internal.h"

namespace moeforge::demo {

using internal::Dialect;
using internal::Entry;
using Json = nlohmann::ordered_json;

const char* RatingLetter(Rating r) {
  switch (r) {
    case Rating::kGeneral: return "g";
    case Rating::kSensitive: return "s";
    case Rating::kQuestionable: return "q";
    case Rating::kExplicit: return "e";
  }
  return "g";
}

const char* RatingWord(Rating r) {
  switch (r) {
    case Rating::kGeneral: return "general";
    case Rating::kSensitive: return "sensitive";
    case Rating::kQuestionable: return "questionable";
    case Rating::kExplicit: return "explicit";
  }
  return "general";
}

std::string PostMeta::TruthJson() const {
  nlohmann::ordered_json j;
  j["remote_id"] = std::to_string(id);  // posts.remote_id is TEXT
  j["md5"] = md5;
  j["width"] = width;
  j["height"] = height;
  j["kind"] = PostKindName(kind);
  if (duplicate_of > 0) j["duplicate_of"] = std::to_string(duplicate_of);
  else j["duplicate_of"] = nullptr;
  j["faces"] = nlohmann::ordered_json::array();
  for (const FaceTruth& f : faces) {
    j["faces"].push_back({{"x", f.box.x}, {"y", f.box.y}, {"w", f.box.width}, {"h", f.box.height},
                          {"tags", f.tags}});
  }
  j["fault"] = {{"name", FaultName(fault.fault)}, {"stored", fault.stored}, {"reason", fault.reason}};
  return j.dump();
}

namespace {

constexpr int kPreviewBox = 180;
constexpr int kCorruptKeep = 64;  // bytes left intact at the start of a corrupt file

const char* ContentTypeFor(const std::string& ext) {
  if (ext == "webp") return "image/webp";
  return ext == "png" ? "image/png" : "image/jpeg";
}

// The five ways a post cannot be had, drawn per post.
constexpr const char* kUnavailable[] = {"deleted", "banned", "restricted", "video", "ugoira"};

// Terms of a tag search (metatags count, as on the sites).
int TermCount(const std::string& tags) {
  int n = 0;
  bool in = false;
  for (char c : tags) {
    bool space = c == ' ' || c == '+' || c == '\t';
    if (!space && !in) ++n;
    in = !space;
  }
  return n;
}

bool HasCredentials(const httplib::Request& req) {
  return (req.has_param("login") && (req.has_param("api_key") || req.has_param("password_hash"))) ||
         (req.has_param("user_id") && req.has_param("api_key"));
}

// What Cloudflare sends while a site is under challenge ("I'm Under Attack" mode).
constexpr const char* kCloudflareChallenge =
    "<!DOCTYPE html><html lang=\"en-US\"><head><title>Just a moment...</title>"
    "<meta http-equiv=\"refresh\" content=\"390\"></head><body>"
    "<div id=\"challenge-running\">Checking if the site connection is secure</div>"
    "<script src=\"/cdn-cgi/challenge-platform/h/g/orchestrate/chl_page/v1\"></script>"
    "</body></html>\n";

// Danbooru's size meta tags.
std::vector<std::string> MetaTags(int w, int h) {
  std::vector<std::string> out;
  if (w >= 3200 || h >= 2400) out.push_back("absurdres");
  if (w >= 1600 || h >= 1200) out.push_back("highres");
  return out;
}

std::vector<std::string> SortedUnique(std::vector<std::string> v) {
  std::sort(v.begin(), v.end());
  v.erase(std::unique(v.begin(), v.end()), v.end());
  return v;
}

// Parses a whole non-negative number; false for anything else.
bool ParseCount(const std::string& s, int64_t* out) {
  if (s.empty() || s.size() > 12) return false;
  for (char c : s)
    if (c < '0' || c > '9') return false;
  *out = std::stoll(s);
  return true;
}

int64_t LimitParam(const httplib::Request& req, int64_t dflt, int64_t max) {
  int64_t v = 0;
  if (!ParseCount(req.get_param_value("limit"), &v) || v <= 0) return dflt;
  return std::min(v, max);
}

void SetJson(httplib::Response& res, const Json& j, int status = 200) {
  res.status = status;
  res.set_content(j.dump(), "application/json; charset=utf-8");
}

void DanbooruError(httplib::Response& res, int status, const std::string& error, const std::string& message) {
  SetJson(res, Json{{"success", false}, {"error", error}, {"message", message}}, status);
}

// Today's Danbooru robots.txt template (api/SOURCES.md): indexers may browse /posts and
// fetch images, but every /*.json and the other API shapes are disallowed.
constexpr const char* kRobotsTxt =
    "User-agent: *\n"
    "Disallow: /*.json\n"
    "Disallow: /*.xml\n"
    "Disallow: /*.atom\n"
    "Disallow: /index.php\n"
    "Disallow: /counts\n"
    "Disallow: /posts/random\n"
    "Disallow: /posts?*tags=source:*\n"
    "Disallow: /redirect/\n"
    "Allow: /posts\n"
    "Allow: /data/\n"
    "Allow: /image/\n"
    "Allow: /images/\n"
    "Allow: /thumbnails/\n"
    "\n"
    "User-agent: HTTrack\n"
    "Disallow: /\n";

constexpr const char* kChallengeHtml =
    "<!DOCTYPE html>\n<html><head><title>Just a moment...</title></head>\n"
    "<body><h1>Checking your browser before accessing the demo booru.</h1>\n"
    "<p>This page is what a CDN sends instead of the image you asked for.</p></body></html>\n";

}  // namespace

struct DemoBooru::Impl {
  Options opt;
  FaultSpec spec;
  httplib::Server http;
  std::thread listener;
  int port = 0;
  bool started = false;
  bool stopped = false;

  struct Slot {
    std::once_flag once;
    std::shared_ptr<const Entry> entry;
  };
  std::vector<std::unique_ptr<Slot>> slots;  // index id - 1
  std::mutex md5_mu;
  std::unordered_map<std::string, int64_t> by_md5;
  std::atomic<bool> all_rendered{false};

  std::mutex attempts_mu;
  std::unordered_map<int64_t, int> attempts;  // original-file requests per post

  // Each post's Danbooru JSON as served under `json_base` (posts never change once
  // rendered; the URLs in them follow the request's Host): a crawl reads every page once,
  // and rebuilding the objects was a quarter of the server's work for a crawl.
  std::mutex json_mu;
  std::string json_base;
  std::unordered_map<int64_t, std::shared_ptr<const std::string>> json_text;
  std::shared_ptr<const std::string> DanbooruPostText(const Entry& e, const std::string& base);

  std::mutex stop_mu;
  std::condition_variable stop_cv;
  bool stopping = false;

  std::atomic<int64_t> n_requests{0}, n_api{0}, n_images{0}, n_faults{0}, n_rendered{0};
  std::atomic<int64_t> n_original{0}, n_sample{0}, original_bytes{0}, sample_bytes{0}, n_challenges{0};
  mutable std::mutex hits_mu;
  std::unordered_map<int64_t, int64_t> sample_hits;  // sample requests per post
  mutable std::mutex log_mu;
  std::vector<RequestLogEntry> log;

  std::shared_ptr<const Entry> Get(int64_t id);
  void EnsureAll();
  std::shared_ptr<const Entry> FindMd5(const std::string& md5);
  std::unique_ptr<Entry> Build(int64_t id) const;
  // Matching ids, newest first (or ascending for order:id), rendering what the filter needs.
  std::vector<int64_t> Select(const internal::TagQuery& q);
  std::vector<std::shared_ptr<const Entry>> Fetch(const std::vector<int64_t>& ids);
  std::string Base(const httplib::Request& req) const;
  // The root of file URLs: Base(), or Options::file_host on the same port.
  std::string FileBase(const httplib::Request& req) const;
  // Answers the anonymous tag limit's refusal; true when it did.
  bool TagLimited(const httplib::Request& req, Dialect d, httplib::Response& res) const;
  // Sleeps up to `ms`; false when the server is stopping.
  bool Stall(int ms);

  // Answers 429 when the api429 fault holds this request back; true when it did.
  bool ApiThrottled(const httplib::Request& req, httplib::Response& res);
  std::mutex api_attempts_mu;
  std::unordered_map<std::string, int> api_attempts;  // per request target

  void Routes();
  void DanbooruList(const httplib::Request& req, httplib::Response& res, bool xml);
  void MoebooruList(const httplib::Request& req, httplib::Response& res);
  void GelbooruDapi(const httplib::Request& req, httplib::Response& res);
  void ServeOriginal(const std::string& md5, const std::string& ext, const httplib::Request& req,
                     httplib::Response& res);
  void ServeBytes(const std::shared_ptr<const Entry>& e, httplib::Response& res);
  void ServeFault(const std::shared_ptr<const Entry>& e, int attempt, const httplib::Request& req,
                  httplib::Response& res);
};

std::unique_ptr<Entry> DemoBooru::Impl::Build(int64_t id) const {
  Illustration ill = RenderPost(opt.seed, id);
  auto e = std::make_unique<Entry>();
  PostMeta& m = e->meta;
  m.id = id;
  m.kind = ill.plan.kind;
  m.duplicate_of = ill.plan.kind == PostKind::kDuplicate ? ill.plan.duplicate_of : 0;
  m.file_ext = ill.plan.file_ext;
  m.width = ill.bgr.cols;
  m.height = ill.bgr.rows;
  m.faces = ill.faces;
  m.fault = FaultFor(opt.seed, id, spec);
  m.rating = UniformFor(opt.seed, id, "rating") < 0.15 ? Rating::kSensitive : Rating::kGeneral;
  m.created_at = 1672531200 + id * 1800 + static_cast<int64_t>(HashFor(opt.seed, id, "created") % 1800);
  m.score = static_cast<int>(HashFor(opt.seed, id, "score") % 40);
  m.artist = "demo_artist_" + std::string(1, static_cast<char>('a' + HashFor(opt.seed, id, "artist") % 12));
  if (m.fault.fault == Fault::kHugeDims) {
    e->bytes = internal::ForgedPng(100000, 100000, "moeforge demo booru post " + std::to_string(id));
    m.file_ext = "png";
    m.width = m.height = 100000;
  } else if (m.kind == PostKind::kNormal && !ill.bgr.empty() && opt.webp_rate > 0 &&
             UniformFor(opt.seed, id, "webp") < opt.webp_rate) {
    std::vector<uchar> buf;
    cv::imencode(".webp", ill.bgr, buf, {cv::IMWRITE_WEBP_QUALITY, 90});
    e->bytes.assign(buf.begin(), buf.end());
    m.file_ext = "webp";
  } else {
    e->bytes = std::move(ill.encoded);
  }
  if (opt.unavailable_rate > 0 && UniformFor(opt.seed, id, "unavailable") < opt.unavailable_rate) {
    m.unavailable = kUnavailable[HashFor(opt.seed, id, "unavailable_kind") % 5];
    if (m.unavailable == "video") m.file_ext = "mp4";
    if (m.unavailable == "ugoira") m.file_ext = "zip";
    m.fault = FaultVerdict{Fault::kNone, false, m.unavailable};
  }
  if (opt.sample_px > 0 && !ill.bgr.empty() && std::max(ill.bgr.cols, ill.bgr.rows) > opt.sample_px &&
      m.fault.fault != Fault::kHugeDims) {
    // Danbooru's sample: a JPEG whose longer side is the sample size (850 there).
    double f = static_cast<double>(opt.sample_px) / std::max(ill.bgr.cols, ill.bgr.rows);
    cv::Mat small;
    cv::resize(ill.bgr, small, cv::Size(), f, f, cv::INTER_AREA);
    std::vector<uchar> buf;
    cv::imencode(".jpg", small, buf, {cv::IMWRITE_JPEG_QUALITY, 85});
    e->sample.assign(buf.begin(), buf.end());
    m.sample_width = small.cols;
    m.sample_height = small.rows;
    m.sample_size = static_cast<int64_t>(e->sample.size());
  }
  e->content_type = ContentTypeFor(m.file_ext);
  m.md5 = internal::Md5Hex(e->bytes);
  m.file_size = static_cast<int64_t>(e->bytes.size());
  e->dir = m.md5.substr(0, 2) + "/" + m.md5.substr(2, 2);
  e->general = SortedUnique(ill.tags);
  e->meta_tags = MetaTags(m.width, m.height);
  std::vector<std::string> all = e->general;
  all.push_back("original");
  all.push_back(m.artist);
  all.insert(all.end(), e->meta_tags.begin(), e->meta_tags.end());
  m.tags = SortedUnique(std::move(all));

  if (!ill.bgr.empty()) {
    double f = std::min(1.0, static_cast<double>(kPreviewBox) / std::max(ill.bgr.cols, ill.bgr.rows));
    cv::Mat small;
    cv::resize(ill.bgr, small, cv::Size(), f, f, cv::INTER_AREA);
    std::vector<uchar> buf;
    cv::imencode(".jpg", small, buf, {cv::IMWRITE_JPEG_QUALITY, 85});
    e->preview.assign(buf.begin(), buf.end());
    e->preview_w = small.cols;
    e->preview_h = small.rows;
  }
  return e;
}

// tbb::parallel_for(first, last, body) with the hand-offs TBB guarantees stated for TSan
// (core/tsan.h): the caller's writes before the loop -> every call of body -> the caller
// after it. The edges are static, so that stating one reads nothing the loop's threads
// share; loops at once (from server threads) share them, which only adds order.
namespace {
template <class Index, class Body>
void ParallelFor(Index first, Index last, const Body& body) {
  static char start, end;
  auto call = [&body](Index i) {
    tsan::Acquire(&start);
    body(i);
    tsan::Release(&end);
  };
  tsan::Release(&start);
  tbb::parallel_for(first, last, call);
  tsan::Acquire(&end);
}
}  // namespace

std::shared_ptr<const Entry> DemoBooru::Impl::Get(int64_t id) {
  Slot& s = *slots[static_cast<size_t>(id - 1)];
  std::call_once(s.once, [&] {
    // OpenCV's drawing runs on TBB too: isolated, a thread waiting inside Build() never
    // picks up another post's render task (which could wait on this very once_flag).
    std::shared_ptr<const Entry> e;
    tbb::this_task_arena::isolate([&] { e = Build(id); });
    {
      std::lock_guard<std::mutex> lk(md5_mu);
      // Exact duplicates share an md5 (and FaultFor gives them one fault): the URL
      // belongs to the lowest id, whichever rendered first.
      auto [it, fresh] = by_md5.emplace(e->meta.md5, id);
      if (!fresh && id < it->second) it->second = id;
    }
    s.entry = std::move(e);
    ++n_rendered;
  });
  return s.entry;
}

void DemoBooru::Impl::EnsureAll() {
  if (all_rendered) return;
  ParallelFor(int64_t{1}, static_cast<int64_t>(opt.posts) + 1, [&](int64_t id) { Get(id); });
  all_rendered = true;
}

std::shared_ptr<const Entry> DemoBooru::Impl::FindMd5(const std::string& md5) {
  for (int pass = 0; pass < 2; ++pass) {
    {
      std::lock_guard<std::mutex> lk(md5_mu);
      auto it = by_md5.find(md5);
      if (it != by_md5.end()) return Get(it->second);
    }
    // A URL from an earlier run of the same seed: every post must be known to answer.
    if (pass == 0) EnsureAll();
  }
  return nullptr;
}

std::vector<int64_t> DemoBooru::Impl::Select(const internal::TagQuery& q) {
  std::vector<int64_t> ids;
  bool filter = !q.include.empty() || !q.exclude.empty() || !q.ratings.empty() ||
                !q.excluded_ratings.empty() || q.impossible;
  if (filter) EnsureAll();
  for (int64_t id = opt.posts; id >= 1; --id) {
    if (q.id_eq && id != *q.id_eq) continue;
    if (q.id_lt && id >= *q.id_lt) continue;
    if (q.id_gt && id <= *q.id_gt) continue;
    if (filter && !internal::Matches(q, Get(id)->meta)) continue;
    ids.push_back(id);
  }
  if (q.ascending) std::reverse(ids.begin(), ids.end());
  return ids;
}

std::vector<std::shared_ptr<const Entry>> DemoBooru::Impl::Fetch(const std::vector<int64_t>& ids) {
  std::vector<std::shared_ptr<const Entry>> out(ids.size());
  ParallelFor(size_t{0}, ids.size(), [&](size_t i) { out[i] = Get(ids[i]); });
  return out;
}

std::string DemoBooru::Impl::Base(const httplib::Request& req) const {
  std::string host = req.get_header_value("Host");
  if (host.empty()) host = opt.host + ":" + std::to_string(port);
  return "http://" + host;
}

std::string DemoBooru::Impl::FileBase(const httplib::Request& req) const {
  if (opt.file_host.empty()) return Base(req);
  return "http://" + opt.file_host + ":" + std::to_string(port);
}

bool DemoBooru::Impl::TagLimited(const httplib::Request& req, Dialect d, httplib::Response& res) const {
  if (!opt.anon_tag_limit || HasCredentials(req)) return false;
  int limit = d == Dialect::kDanbooru ? 2 : (d == Dialect::kMoebooru ? 6 : 0);
  if (limit <= 0 || TermCount(req.get_param_value("tags")) <= limit) return false;
  if (d == Dialect::kDanbooru) {
    DanbooruError(res, 422, "PostQuery::TagLimitError",
                  "You cannot search for more than " + std::to_string(limit) +
                      " tags at a time. Upgrade your account to search for more tags at once.");
  } else {
    SetJson(res, Json{{"success", false}, {"reason", "You can only search up to " + std::to_string(limit) + " tags at once"}},
            424);
  }
  return true;
}

bool DemoBooru::Impl::Stall(int ms) {
  std::unique_lock<std::mutex> lk(stop_mu);
  return !stop_cv.wait_for(lk, std::chrono::milliseconds(ms), [&] { return stopping; });
}

bool DemoBooru::Impl::ApiThrottled(const httplib::Request& req, httplib::Response& res) {
  ++n_api;
  if (!ApiRateLimited(opt.seed, req.target, spec)) return false;
  int attempt = 0;
  {
    std::lock_guard<std::mutex> lk(api_attempts_mu);
    attempt = ++api_attempts[req.target];
  }
  if (attempt > spec.fail_first) return false;
  ++n_faults;
  res.set_header("Retry-After", std::to_string(spec.retry_after_s));
  SetJson(res, Json{{"success", false}, {"message", "Rate limit exceeded, slow down."}}, 429);
  return true;
}

std::shared_ptr<const std::string> DemoBooru::Impl::DanbooruPostText(const Entry& e, const std::string& base) {
  {
    std::lock_guard<std::mutex> lk(json_mu);
    if (json_base == base) {
      auto it = json_text.find(e.meta.id);
      if (it != json_text.end()) return it->second;
    }
  }
  auto text = std::make_shared<const std::string>(internal::DanbooruPost(e, base).dump());
  std::lock_guard<std::mutex> lk(json_mu);
  if (json_base != base) {
    json_base = base;
    json_text.clear();
  }
  json_text[e.meta.id] = text;
  return text;
}

void DemoBooru::Impl::DanbooruList(const httplib::Request& req, httplib::Response& res, bool xml) {
  Result<internal::TagQuery> q = internal::ParseTagQuery(req.get_param_value("tags"), Dialect::kDanbooru);
  if (!q.ok()) return DanbooruError(res, 422, "PostQuery::Error", q.status().message());
  if (TagLimited(req, Dialect::kDanbooru, res)) return;
  int64_t limit = LimitParam(req, 20, 200);
  std::string page = req.get_param_value("page");
  std::vector<int64_t> ids = Select(*q);
  std::vector<int64_t> slice;
  int64_t cursor = 0;
  if (!page.empty() && (page[0] == 'b' || page[0] == 'a') && ParseCount(page.substr(1), &cursor)) {
    // Sequential paging: the `limit` posts just below (b) or above (a) the cursor,
    // always shown newest first, as Danbooru does.
    std::vector<int64_t> desc = ids;
    std::sort(desc.rbegin(), desc.rend());
    if (page[0] == 'b') {
      for (int64_t id : desc)
        if (id < cursor && static_cast<int64_t>(slice.size()) < limit) slice.push_back(id);
    } else {
      for (auto it = desc.rbegin(); it != desc.rend(); ++it)
        if (*it > cursor && static_cast<int64_t>(slice.size()) < limit) slice.push_back(*it);
      std::reverse(slice.begin(), slice.end());
    }
  } else {
    int64_t n = 1;
    if (!page.empty() && (!ParseCount(page, &n) || n < 1))
      return DanbooruError(res, 400, "PaginationExtension::PaginationError", "invalid page '" + page + "'");
    if (n > opt.page_cap)
      return DanbooruError(res, 410, "PaginationExtension::PaginationError",
                           "You cannot go beyond page " + std::to_string(opt.page_cap) +
                               ". Try narrowing your search terms.");
    for (int64_t i = (n - 1) * limit; i < n * limit && i < static_cast<int64_t>(ids.size()); ++i)
      slice.push_back(ids[static_cast<size_t>(i)]);
  }
  std::string base = FileBase(req);
  std::vector<std::shared_ptr<const Entry>> entries = Fetch(slice);
  if (!xml) {
    // The compact dump of the array is its elements' dumps joined by commas, so a page is
    // assembled from each post's cached text (byte for byte what dumping the array gives).
    std::string out = "[";
    for (size_t i = 0; i < entries.size(); ++i) {
      if (i) out += ',';
      out += *DanbooruPostText(*entries[i], base);
    }
    out += ']';
    res.status = 200;
    res.body = std::move(out);  // set_content() would copy the page
    res.set_header("Content-Type", "application/json; charset=utf-8");
    return;
  }
  Json arr = Json::array();
  for (const auto& e : entries) arr.push_back(internal::DanbooruPost(*e, base));
  std::string out = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<posts type=\"array\">\n";
  for (const Json& p : arr) out += internal::DanbooruPostXml(p, "  ");
  out += "</posts>\n";
  res.set_content(out, "application/xml; charset=utf-8");
}

void DemoBooru::Impl::MoebooruList(const httplib::Request& req, httplib::Response& res) {
  Result<internal::TagQuery> q = internal::ParseTagQuery(req.get_param_value("tags"), Dialect::kMoebooru);
  if (!q.ok()) return SetJson(res, Json{{"success", false}, {"reason", q.status().message()}}, 424);
  if (TagLimited(req, Dialect::kMoebooru, res)) return;
  int64_t limit = LimitParam(req, 16, 1000);
  int64_t page = 1;
  if (!ParseCount(req.get_param_value("page"), &page) || page < 1) page = 1;
  if (page > opt.page_cap)
    return SetJson(res, Json{{"success", false}, {"reason", "page " + std::to_string(page) + " is beyond the last page (" +
                                                                 std::to_string(opt.page_cap) + ") served"}},
                   424);
  std::vector<int64_t> ids = Select(*q);
  std::vector<int64_t> slice;
  for (int64_t i = (page - 1) * limit; i < page * limit && i < static_cast<int64_t>(ids.size()); ++i)
    slice.push_back(ids[static_cast<size_t>(i)]);
  Json arr = Json::array();
  std::string base = FileBase(req);
  for (const auto& e : Fetch(slice)) arr.push_back(internal::MoebooruPost(*e, base));
  SetJson(res, arr);
}

void DemoBooru::Impl::GelbooruDapi(const httplib::Request& req, httplib::Response& res) {
  if (req.get_param_value("page") != "dapi" || req.get_param_value("s") != "post" ||
      req.get_param_value("q") != "index") {
    res.status = 404;
    res.set_content("<html><body>Only page=dapi&amp;s=post&amp;q=index is here.</body></html>", "text/html");
    return;
  }
  if (opt.gelbooru_key_status > 0 && !(req.has_param("user_id") && req.has_param("api_key"))) {
    res.status = opt.gelbooru_key_status;
    res.set_content("Missing authentication: the API needs an api_key and a user_id (account options).",
                    "text/plain");
    return;
  }
  std::string tags = req.get_param_value("tags");
  std::string id_param = req.get_param_value("id");
  if (!id_param.empty()) tags = "id:" + id_param;
  Result<internal::TagQuery> q = internal::ParseTagQuery(tags, Dialect::kGelbooru);
  bool json = req.get_param_value("json") == "1";
  int64_t limit = LimitParam(req, 100, 1000);
  int64_t pid = 0;
  if (!ParseCount(req.get_param_value("pid"), &pid)) pid = 0;
  if (pid + 1 > opt.page_cap)
    return SetJson(res, Json{{"success", false}, {"message", "Too deep! Pull it back some. Holy fuck."}}, 200);
  std::vector<int64_t> ids = q.ok() ? Select(*q) : std::vector<int64_t>{};
  std::vector<int64_t> slice;
  for (int64_t i = pid * limit; i < (pid + 1) * limit && i < static_cast<int64_t>(ids.size()); ++i)
    slice.push_back(ids[static_cast<size_t>(i)]);
  std::string base = FileBase(req);
  std::vector<std::shared_ptr<const Entry>> entries = Fetch(slice);
  int64_t offset = pid * limit, count = static_cast<int64_t>(ids.size());
  if (json) {
    Json j;
    j["@attributes"] = {{"limit", limit}, {"offset", offset}, {"count", count}};
    if (!entries.empty()) {  // an empty result has no "post" key at all
      j["post"] = Json::array();
      for (const auto& e : entries) j["post"].push_back(internal::GelbooruPost(*e, base));
    }
    return SetJson(res, j);
  }
  std::string xml = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<posts limit=\"" + std::to_string(limit) +
                    "\" offset=\"" + std::to_string(offset) + "\" count=\"" + std::to_string(count) + "\">\n";
  for (const auto& e : entries) xml += internal::GelbooruPostXml(*e, base, "    ");
  xml += "</posts>\n";
  res.set_content(xml, "text/xml; charset=utf-8");
}

void DemoBooru::Impl::ServeBytes(const std::shared_ptr<const Entry>& e, httplib::Response& res) {
  original_bytes += static_cast<int64_t>(e->bytes.size());
  res.status = 200;
  res.set_header("Cache-Control", "public, max-age=31536000");
  // Sent from the entry itself rather than copied into the response first.
  std::shared_ptr<const Entry> keep = e;
  res.set_content_provider(e->bytes.size(), e->content_type,
                           [keep](size_t offset, size_t length, httplib::DataSink& sink) {
                             return sink.write(keep->bytes.data() + offset, length);
                           });
}

void DemoBooru::Impl::ServeOriginal(const std::string& md5, const std::string& ext,
                                    const httplib::Request& req, httplib::Response& res) {
  std::shared_ptr<const Entry> e = FindMd5(md5);
  ++n_original;
  if (!e || (!ext.empty() && ext != e->meta.file_ext) || !e->meta.unavailable.empty()) {
    res.status = 404;
    res.set_content("not found", "text/plain");
    return;
  }
  int attempt = 0;
  {
    std::lock_guard<std::mutex> lk(attempts_mu);
    attempt = ++attempts[e->meta.id];
  }
  if (e->meta.fault.fault == Fault::kNone) return ServeBytes(e, res);
  ServeFault(e, attempt, req, res);
}

void DemoBooru::Impl::ServeFault(const std::shared_ptr<const Entry>& e, int attempt,
                                 const httplib::Request& req, httplib::Response& res) {
  const PostMeta& m = e->meta;
  bool transient_over = attempt > spec.fail_first;
  switch (m.fault.fault) {
    case Fault::kNone:
      return ServeBytes(e, res);
    case Fault::kRate429:
      if (transient_over) return ServeBytes(e, res);
      ++n_faults;
      res.set_header("Retry-After", std::to_string(spec.retry_after_s));
      return SetJson(res, Json{{"success", false}, {"message", "Rate limit exceeded, slow down."}}, 429);
    case Fault::k5xx: {
      if (transient_over) return ServeBytes(e, res);
      ++n_faults;
      static const int kCodes[] = {500, 502, 503};
      res.status = kCodes[HashFor(opt.seed, m.id, "5xx:" + std::to_string(attempt)) % 3];
      res.set_content("<html><body><h1>" + std::to_string(res.status) + "</h1>The server had a bad moment.</body></html>\n",
                      "text/html");
      return;
    }
    case Fault::k5xxPermanent:
      ++n_faults;
      res.status = 500;
      res.set_content("<html><body><h1>500 Internal Server Error</h1></body></html>\n", "text/html");
      return;
    case Fault::kStall: {
      ++n_faults;
      std::shared_ptr<const Entry> keep = e;
      size_t first = std::min<size_t>(1024, e->bytes.size() / 2);
      int ms = spec.stall_ms;
      res.set_content_provider(e->bytes.size(), e->content_type,
                               [this, keep, first, ms](size_t offset, size_t, httplib::DataSink& sink) {
                                 const std::string& b = keep->bytes;
                                 if (offset < first) return sink.write(b.data() + offset, first - offset);
                                 if (!Stall(ms)) return false;
                                 return sink.write(b.data() + offset, b.size() - offset);
                               });
      return;
    }
    case Fault::kTruncate: {
      ++n_faults;
      std::shared_ptr<const Entry> keep = e;
      size_t half = e->bytes.size() / 2;
      res.set_content_provider(e->bytes.size(), e->content_type,
                               [keep, half](size_t offset, size_t, httplib::DataSink& sink) {
                                 if (offset >= half) return false;  // closes the connection
                                 return sink.write(keep->bytes.data() + offset, half - offset);
                               });
      return;
    }
    case Fault::kCorrupt: {
      ++n_faults;
      std::string bad = e->bytes;
      uint64_t x = HashFor(opt.seed, m.id, "corrupt");
      for (size_t i = kCorruptKeep; i < bad.size(); ++i) {
        x = x * 6364136223846793005ull + 1442695040888963407ull;
        bad[i] = static_cast<char>(bad[i] ^ ((x >> 56) | 1));  // never a no-op
      }
      res.set_content(std::move(bad), e->content_type);
      return;
    }
    case Fault::kContentType:
      ++n_faults;
      res.set_content(kChallengeHtml, "text/html; charset=utf-8");
      return;
    case Fault::kRedirectLoop:
      ++n_faults;
      res.set_redirect(Base(req) + "/redirect/" + std::to_string(m.id) + "/a", 302);
      return;
    case Fault::kRedirectScheme: {
      ++n_faults;
      std::string host = req.get_header_value("Host");
      if (host.empty()) host = opt.host;
      bool ftp = HashFor(opt.seed, m.id, "redirect_scheme") % 2 == 0;
      res.set_redirect(ftp ? "ftp://" + host + "/data/original/" + e->dir + "/" + m.md5 + "." + m.file_ext
                           : std::string("file:///etc/passwd"),
                       302);
      return;
    }
    case Fault::kOversize: {
      ++n_faults;
      std::shared_ptr<const Entry> keep = e;
      size_t total = static_cast<size_t>(spec.oversize_bytes);
      auto fill = [keep, total](size_t offset, httplib::DataSink& sink) {
        static const std::string zeros(64 << 10, '\0');
        const std::string& b = keep->bytes;
        if (offset < b.size()) return sink.write(b.data() + offset, b.size() - offset);
        return sink.write(zeros.data(), std::min(zeros.size(), total - offset));
      };
      if (HashFor(opt.seed, m.id, "oversize") % 2 == 0) {
        res.set_content_provider(total, e->content_type,
                                 [fill](size_t offset, size_t, httplib::DataSink& sink) { return fill(offset, sink); });
      } else {
        res.set_chunked_content_provider(e->content_type, [fill, total](size_t offset, httplib::DataSink& sink) {
          if (offset >= total) {
            sink.done();
            return true;
          }
          return fill(offset, sink);
        });
      }
      return;
    }
    case Fault::kHugeDims:
      ++n_faults;
      return ServeBytes(e, res);  // the forged PNG is the post's file
    case Fault::kNoAi:
      ++n_faults;
      res.set_header("X-Robots-Tag", "noai, noimageai");
      return ServeBytes(e, res);
  }
}

void DemoBooru::Impl::Routes() {
  http.set_pre_routing_handler([this](const httplib::Request& req, httplib::Response& res) {
    int64_t n = ++n_requests;
    if (opt.log_requests) {
      double t = std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
      std::lock_guard<std::mutex> lk(log_mu);
      log.push_back(RequestLogEntry{t, req.get_header_value("Host"), req.target});
    }
    if (opt.challenge_after >= 0 && n > opt.challenge_after) {
      ++n_challenges;
      res.status = 403;
      res.set_header("cf-mitigated", "challenge");
      res.set_header("Server", "cloudflare");
      res.set_header("Cache-Control", "private, max-age=0, no-store, no-cache, must-revalidate");
      res.set_content(kCloudflareChallenge, "text/html; charset=UTF-8");
      return httplib::Server::HandlerResponse::Handled;
    }
    return httplib::Server::HandlerResponse::Unhandled;
  });
  http.Get("/robots.txt", [](const httplib::Request&, httplib::Response& res) {
    res.set_content(kRobotsTxt, "text/plain");
  });
  http.Get(R"(/posts\.(json|xml))", [this](const httplib::Request& req, httplib::Response& res) {
    if (ApiThrottled(req, res)) return;
    DanbooruList(req, res, req.matches[1].str() == "xml");
  });
  http.Get(R"(/posts/(\d{1,12})\.(json|xml))", [this](const httplib::Request& req, httplib::Response& res) {
    if (ApiThrottled(req, res)) return;
    int64_t id = std::stoll(req.matches[1].str());
    if (id < 1 || id > opt.posts)
      return DanbooruError(res, 404, "ActiveRecord::RecordNotFound", "That record was not found.");
    Json post = internal::DanbooruPost(*Get(id), Base(req));
    if (req.matches[2].str() == "json") return SetJson(res, post);
    res.set_content("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n" + internal::DanbooruPostXml(post, ""),
                    "application/xml; charset=utf-8");
  });
  http.Get("/counts/posts.json", [this](const httplib::Request& req, httplib::Response& res) {
    if (ApiThrottled(req, res)) return;
    Result<internal::TagQuery> q = internal::ParseTagQuery(req.get_param_value("tags"), Dialect::kDanbooru);
    if (!q.ok()) return DanbooruError(res, 422, "PostQuery::Error", q.status().message());
    SetJson(res, Json{{"counts", {{"posts", static_cast<int64_t>(Select(*q).size())}}}});
  });
  http.Get("/post.json", [this](const httplib::Request& req, httplib::Response& res) {
    if (ApiThrottled(req, res)) return;
    MoebooruList(req, res);
  });
  http.Get("/index.php", [this](const httplib::Request& req, httplib::Response& res) {
    if (ApiThrottled(req, res)) return;
    GelbooruDapi(req, res);
  });
  // Originals: Danbooru, Gelbooru (ab/cd/md5.ext) and Moebooru (md5/any-name.ext).
  auto original = [this](const httplib::Request& req, httplib::Response& res) {
    ++n_images;
    std::string dir = req.matches[1].str() + "/" + req.matches[2].str();
    std::string md5 = req.matches[3].str();
    if (md5.compare(0, 2, req.matches[1].str()) != 0 || md5.compare(2, 2, req.matches[2].str()) != 0) {
      res.status = 404;
      return;
    }
    ServeOriginal(md5, req.matches[4].str(), req, res);
  };
  http.Get(R"(/data/original/([0-9a-f]{2})/([0-9a-f]{2})/([0-9a-f]{32})\.(png|jpg|webp))", original);
  http.Get(R"(/images/([0-9a-f]{2})/([0-9a-f]{2})/([0-9a-f]{32})\.(png|jpg|webp))", original);
  http.Get(R"(/data/sample/[0-9a-f]{2}/[0-9a-f]{2}/sample-([0-9a-f]{32})\.jpg)",
           [this](const httplib::Request& req, httplib::Response& res) {
             ++n_images;
             ++n_sample;
             std::shared_ptr<const Entry> e = FindMd5(req.matches[1].str());
             if (!e || e->sample.empty()) {
               res.status = 404;
               return;
             }
             {
               std::lock_guard<std::mutex> lk(hits_mu);
               ++sample_hits[e->meta.id];
             }
             sample_bytes += static_cast<int64_t>(e->sample.size());
             res.set_content(e->sample, "image/jpeg");
           });
  http.Get(R"(/image/([0-9a-f]{32})/[^/]+\.(png|jpg|webp))", [this](const httplib::Request& req, httplib::Response& res) {
    ++n_images;
    ServeOriginal(req.matches[1].str(), req.matches[2].str(), req, res);
  });
  auto preview = [this](const httplib::Request& req, httplib::Response& res) {
    ++n_images;
    std::shared_ptr<const Entry> e = FindMd5(req.matches[1].str());
    if (!e || e->preview.empty()) {
      res.status = 404;
      return;
    }
    res.set_content(e->preview, "image/jpeg");
  };
  http.Get(R"(/data/preview/[0-9a-f]{2}/[0-9a-f]{2}/([0-9a-f]{32})\.jpg)", preview);
  http.Get(R"(/thumbnails/[0-9a-f]{2}/[0-9a-f]{2}/thumbnail_([0-9a-f]{32})\.jpg)", preview);
  // The two hops of a redirect loop: a -> b -> the original URL -> a ...
  http.Get(R"(/redirect/(\d{1,12})/(a|b))", [this](const httplib::Request& req, httplib::Response& res) {
    ++n_images;
    int64_t id = std::stoll(req.matches[1].str());
    if (id < 1 || id > opt.posts) {
      res.status = 404;
      return;
    }
    std::shared_ptr<const Entry> e = Get(id);
    if (req.matches[2].str() == "a") {
      res.set_redirect(Base(req) + "/redirect/" + std::to_string(id) + "/b", 302);
    } else {
      res.set_redirect(internal::OriginalUrl(*e, Dialect::kDanbooru, Base(req)), 302);
    }
  });
}

DemoBooru::DemoBooru(Options options) : impl_(std::make_unique<Impl>()) { impl_->opt = std::move(options); }

DemoBooru::~DemoBooru() { Stop(); }

Status DemoBooru::Start() {
  Impl& d = *impl_;
  if (d.started) return Status::InvalidArgument("demo booru already started");
  if (d.opt.posts < 1 || d.opt.posts > 10000000)
    return Status::InvalidArgument("--posts must lie in 1..10000000, got " + std::to_string(d.opt.posts));
  if (d.opt.threads < 1 || d.opt.threads > 1024)
    return Status::InvalidArgument("--threads must lie in 1..1024, got " + std::to_string(d.opt.threads));
  if (d.opt.port < 0 || d.opt.port > 65535)
    return Status::InvalidArgument("--port must lie in 0..65535, got " + std::to_string(d.opt.port));
  if (d.opt.gelbooru_key_status != 0 && d.opt.gelbooru_key_status != 401 && d.opt.gelbooru_key_status != 403)
    return Status::InvalidArgument("--gelbooru-key-status must be 0, 401 or 403, got " +
                                   std::to_string(d.opt.gelbooru_key_status));
  Result<FaultSpec> spec = ParseFaultSpec(d.opt.faults);
  if (!spec.ok()) return spec.status().WithContext("--faults");
  d.spec = *spec;
  d.slots.reserve(static_cast<size_t>(d.opt.posts));
  for (int i = 0; i < d.opt.posts; ++i) d.slots.push_back(std::make_unique<Impl::Slot>());
  if (d.opt.prerender) d.EnsureAll();

  int threads = d.opt.threads;
  d.http.new_task_queue = [threads] { return new httplib::ThreadPool(static_cast<size_t>(threads)); };
  d.http.set_keep_alive_max_count(100000);
  d.http.set_tcp_nodelay(true);
  d.Routes();
  auto bound = BindAndListen(d.http, d.opt.host, d.opt.port, &d.listener);
  if (!bound.ok()) return bound.status();
  d.port = *bound;
  d.started = true;
  return Status::Ok();
}

int DemoBooru::port() const { return impl_->port; }

std::string DemoBooru::base_url() const { return HttpBaseUrl(impl_->opt.host, impl_->port); }

void DemoBooru::Stop() {
  Impl& d = *impl_;
  if (!d.started || d.stopped) return;
  d.stopped = true;
  {
    std::lock_guard<std::mutex> lk(d.stop_mu);
    d.stopping = true;
  }
  d.stop_cv.notify_all();
  d.http.stop();
  if (d.listener.joinable()) d.listener.join();
}

const DemoBooru::Options& DemoBooru::options() const { return impl_->opt; }
const FaultSpec& DemoBooru::fault_spec() const { return impl_->spec; }

Result<PostMeta> DemoBooru::Post(int64_t id) {
  if (impl_->slots.empty()) return Status::InvalidArgument("demo booru not started");
  if (id < 1 || id > impl_->opt.posts)
    return Status::NotFound("post " + std::to_string(id) + " (the demo booru has 1.." +
                            std::to_string(impl_->opt.posts) + ")");
  return impl_->Get(id)->meta;
}

Status DemoBooru::WriteTruth(const std::string& path) {
  Impl& d = *impl_;
  if (d.slots.empty()) return Status::InvalidArgument("demo booru not started");
  d.EnsureAll();
  std::string text;
  for (int64_t id = 1; id <= d.opt.posts; ++id) text += d.Get(id)->meta.TruthJson() + "\n";
  return WriteFileAtomic(path, text.data(), text.size()).WithContext("writing truth " + path);
}

ServerStats DemoBooru::stats() const {
  const Impl& d = *impl_;
  ServerStats s;
  s.requests = d.n_requests;
  s.api_requests = d.n_api;
  s.image_requests = d.n_images;
  s.faults_injected = d.n_faults;
  s.rendered = d.n_rendered;
  s.original_requests = d.n_original;
  s.sample_requests = d.n_sample;
  s.original_bytes = d.original_bytes;
  s.sample_bytes = d.sample_bytes;
  s.challenges = d.n_challenges;
  return s;
}

int64_t DemoBooru::OriginalHits(int64_t id) const {
  std::lock_guard<std::mutex> lk(impl_->attempts_mu);
  auto it = impl_->attempts.find(id);
  return it == impl_->attempts.end() ? 0 : it->second;
}

int64_t DemoBooru::SampleHits(int64_t id) const {
  std::lock_guard<std::mutex> lk(impl_->hits_mu);
  auto it = impl_->sample_hits.find(id);
  return it == impl_->sample_hits.end() ? 0 : it->second;
}

std::vector<RequestLogEntry> DemoBooru::request_log() const {
  std::lock_guard<std::mutex> lk(impl_->log_mu);
  return impl_->log;
}

}  // namespace moeforge::demo
