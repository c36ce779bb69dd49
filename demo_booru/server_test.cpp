// The demo booru server, in-process on 127.0.0.1 port 0, fetched with httplib::Client
// (and a raw socket where the bytes on the wire matter): each dialect's JSON/XML, paging
// and tag search against the truth, robots.txt, image md5s, every fault mode, the truth
// dump and the `moeforge demo-booru` command.
#include "demo_booru/server.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <regex>
#include <set>
#include <thread>

#include <gtest/gtest.h>
#include <httplib.h>
#include <nlohmann/json.hpp>
#include <opencv2/imgcodecs.hpp>

#include "demo_booru/faults.h"
#include "demo_booru/server_internal.h"

namespace moeforge::demo {
namespace {

using nlohmann::json;
constexpr uint64_t kSeed = 7;
constexpr int kPosts = 30;

std::unique_ptr<DemoBooru> StartBooru(const std::string& faults = "", int posts = kPosts, bool prerender = true) {
  DemoBooru::Options o;
  o.prerender = prerender;
  o.posts = posts;
  o.seed = kSeed;
  o.faults = faults;
  o.threads = 8;
  auto b = std::make_unique<DemoBooru>(o);
  Status s = b->Start();
  EXPECT_TRUE(s.ok()) << s.ToString();
  EXPECT_GT(b->port(), 0);
  return b;
}

json GetJson(httplib::Client& cli, const std::string& path, int want_status = 200) {
  auto res = cli.Get(path.c_str());
  EXPECT_TRUE(res) << path << ": " << httplib::to_string(res.error());
  if (!res) return json();
  EXPECT_EQ(res->status, want_status) << path << ": " << res->body;
  EXPECT_EQ(res->get_header_value("Content-Type").rfind("application/json", 0), 0u) << path;
  json j = json::parse(res->body, nullptr, /*allow_exceptions=*/false);
  EXPECT_FALSE(j.is_discarded()) << path << " is not JSON: " << res->body.substr(0, 200);
  return j;
}

std::string PathOf(const std::string& url) {
  size_t p = url.find("://");
  p = url.find('/', p + 3);
  return url.substr(p);
}

std::vector<int64_t> Ids(const json& arr) {
  std::vector<int64_t> ids;
  for (const json& p : arr) ids.push_back(p.at("id").get<int64_t>());
  return ids;
}

std::set<std::string> Words(const std::string& s) {
  std::set<std::string> out;
  std::string cur;
  for (char c : s + " ") {
    if (c == ' ') {
      if (!cur.empty()) out.insert(cur);
      cur.clear();
    } else {
      cur += c;
    }
  }
  return out;
}

// What went over the wire for one GET with Connection: close.
struct Raw {
  std::string head;  // status line and headers
  std::string body;  // as received (not de-chunked)
  bool timed_out = false;
  std::string Header(const std::string& name) const {
    std::string lower_head = head;
    std::transform(lower_head.begin(), lower_head.end(), lower_head.begin(), ::tolower);
    std::string key = "\r\n" + name + ": ";
    std::transform(key.begin(), key.end(), key.begin(), ::tolower);
    size_t p = lower_head.find(key);
    if (p == std::string::npos) return "";
    size_t b = p + key.size();
    return head.substr(b, head.find("\r\n", b) - b);
  }
};

Raw RawGet(int port, const std::string& path, int timeout_ms) {
  Raw r;
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  EXPECT_EQ(connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  timeval tv{timeout_ms / 1000, (timeout_ms % 1000) * 1000};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  std::string req = "GET " + path + " HTTP/1.1\r\nHost: 127.0.0.1:" + std::to_string(port) +
                    "\r\nConnection: close\r\n\r\n";
  EXPECT_EQ(send(fd, req.data(), req.size(), 0), static_cast<ssize_t>(req.size()));
  std::string all;
  char buf[65536];
  for (;;) {
    ssize_t n = recv(fd, buf, sizeof buf, 0);
    if (n > 0) {
      all.append(buf, static_cast<size_t>(n));
    } else {
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) r.timed_out = true;
      break;
    }
  }
  close(fd);
  size_t sep = all.find("\r\n\r\n");
  r.head = all.substr(0, sep);
  if (sep != std::string::npos) r.body = all.substr(sep + 4);
  return r;
}

TEST(FaultSpec, ParsesGoodSpecsAndRejectsBadOnes) {
  struct Case {
    const char* spec;
    bool ok;
  } cases[] = {
      {"", true},
      {"rate429=0.05,5xx=0.05,stall=0.02,truncate=0.02,corrupt=0.02,ctype=0.02,"
       "redirect_loop=0.01,redirect_scheme=0.01,oversize=0.01,huge_dims=0.01",
       true},
      {" noai = 0.5 , 5xx_perm=1 ", true},
      {"stall=0.1,stall_ms=500,fail_first=3,retry_after=0,oversize_mb=2", true},
      {"api429=0.1,rate429=0.1", true},
      {"api429=2", false},
      {"rate429=1.5", false},
      {"rate429=-0.1", false},
      {"bogus=0.1", false},
      {"stall", false},
      {"stall_ms=abc", false},
      {"fail_first=1.5", false},
      {"oversize_mb=0", false},
  };
  for (const Case& c : cases) {
    Result<FaultSpec> r = ParseFaultSpec(c.spec);
    EXPECT_EQ(r.ok(), c.ok) << c.spec << " -> " << r.status().ToString();
    if (r.ok()) {  // the canonical text parses back to the same spec
      Result<FaultSpec> again = ParseFaultSpec(r->ToString());
      ASSERT_TRUE(again.ok()) << r->ToString();
      EXPECT_EQ(again->ToString(), r->ToString());
    }
  }
  EXPECT_EQ(ParseFaultSpec("stall_ms=500")->stall_ms, 500);
  EXPECT_EQ(ParseFaultSpec("oversize_mb=2")->oversize_bytes, 2 << 20);
}

TEST(FaultFor, IsDeterministicAndFollowsTheRates) {
  FaultSpec spec = *ParseFaultSpec("rate429=0.05,5xx=0.05,stall=0.02,truncate=0.02,corrupt=0.02,ctype=0.02,"
                                   "redirect_loop=0.01,redirect_scheme=0.01,oversize=0.01,huge_dims=0.01");
  std::map<Fault, int> count;
  const int n = 40000;
  int differ_by_seed = 0;
  for (int64_t id = 1; id <= n; ++id) {
    FaultVerdict v = FaultFor(kSeed, id, spec);
    FaultVerdict again = FaultFor(kSeed, id, spec);
    ASSERT_EQ(v.fault, again.fault);
    count[v.fault]++;
    if (FaultFor(kSeed + 1, id, spec).fault != v.fault) ++differ_by_seed;
  }
  // Each fault about its rate (earlier faults in the table shadow later ones a little).
  struct Want {
    Fault f;
    double rate;
  } wants[] = {{Fault::kRate429, 0.05}, {Fault::k5xx, 0.05 * 0.95}, {Fault::kStall, 0.02 * 0.9},
               {Fault::kOversize, 0.01 * 0.85}, {Fault::kHugeDims, 0.01 * 0.85}};
  for (const Want& w : wants) {
    double got = static_cast<double>(count[w.f]) / n;
    EXPECT_NEAR(got, w.rate, w.rate * 0.2) << FaultName(w.f);
  }
  EXPECT_GT(differ_by_seed, n / 20);
  EXPECT_EQ(FaultFor(kSeed, 1, FaultSpec()).fault, Fault::kNone);
  EXPECT_FALSE(FaultFor(kSeed, 1, std::string("nope=1")).ok());
}

TEST(FaultFor, ExactDuplicatesShareTheirOriginalsFault) {
  // Same bytes, same md5, same URL: the server cannot tell them apart, so neither may FaultFor.
  FaultSpec spec = *ParseFaultSpec("corrupt=0.3,ctype=0.3");
  int exact = 0, faulted = 0;
  for (int64_t id = 1; id <= 3000; ++id) {
    PostPlan p = PlanPost(kSeed, id);
    if (p.kind != PostKind::kDuplicate || p.duplicate_how != DuplicateHow::kExact) continue;
    ++exact;
    FaultVerdict v = FaultFor(kSeed, id, spec);
    EXPECT_EQ(v.fault, FaultFor(kSeed, p.duplicate_of, spec).fault) << id;
    faulted += v.fault != Fault::kNone;
  }
  EXPECT_GT(exact, 10);
  EXPECT_GT(faulted, 0);
}

TEST(FaultFor, SaysWhichPostsAreStoredAndWhy) {
  struct Case {
    const char* name;
    Fault fault;
    bool stored;
    const char* reason;
  } cases[] = {
      {"rate429", Fault::kRate429, true, ""},
      {"5xx", Fault::k5xx, true, ""},
      {"5xx_perm", Fault::k5xxPermanent, false, "http_500"},
      {"stall", Fault::kStall, false, "timeout"},
      {"truncate", Fault::kTruncate, false, "truncated"},
      {"corrupt", Fault::kCorrupt, false, "corrupt"},
      {"ctype", Fault::kContentType, false, "content_type"},
      {"redirect_loop", Fault::kRedirectLoop, false, "redirect_loop"},
      {"redirect_scheme", Fault::kRedirectScheme, false, "redirect_scheme"},
      {"oversize", Fault::kOversize, false, "too_large"},
      {"huge_dims", Fault::kHugeDims, false, "huge_dims"},
      {"noai", Fault::kNoAi, false, "noai"},
  };
  for (const Case& c : cases) {
    Result<FaultVerdict> v = FaultFor(kSeed, 3, std::string(c.name) + "=1");
    ASSERT_TRUE(v.ok()) << c.name;
    EXPECT_EQ(v->fault, c.fault) << c.name;
    EXPECT_EQ(v->stored, c.stored) << c.name;
    EXPECT_EQ(v->reason, c.reason) << c.name;
    EXPECT_STREQ(FaultName(c.fault), c.name);
  }
}

TEST(DemoBooru, RejectsBadOptions) {
  struct Case {
    int posts, port, threads;
    const char* faults;
  } cases[] = {{0, 0, 4, ""}, {10, 70000, 4, ""}, {10, 0, 0, ""}, {10, 0, 4, "teapot=1"}};
  for (const Case& c : cases) {
    DemoBooru::Options o;
    o.posts = c.posts;
    o.port = c.port;
    o.threads = c.threads;
    o.faults = c.faults;
    DemoBooru b(o);
    Status s = b.Start();
    EXPECT_EQ(s.code(), Status::Code::kInvalidArgument) << c.posts << " " << c.port << " " << c.faults;
  }
  // Gelbooru's key rule answers 401 or 403, nothing else.
  DemoBooru::Options key;
  key.posts = 3;
  key.gelbooru_key_status = 500;
  EXPECT_EQ(DemoBooru(key).Start().code(), Status::Code::kInvalidArgument);
  // A port already taken.
  auto first = StartBooru("", 3);
  DemoBooru::Options o;
  o.posts = 3;
  o.port = first->port();
  DemoBooru second(o);
  EXPECT_EQ(second.Start().code(), Status::Code::kIoError);
}

class DemoBooruTest : public ::testing::Test {
 protected:
  // Lazy: these tests also exercise rendering on demand from many threads.
  static void SetUpTestSuite() { booru_ = StartBooru("", kPosts, /*prerender=*/false).release(); }
  static void TearDownTestSuite() {
    delete booru_;
    booru_ = nullptr;
  }
  httplib::Client Client() {
    httplib::Client cli("127.0.0.1", booru_->port());
    cli.set_read_timeout(30, 0);
    return cli;
  }
  static DemoBooru* booru_;
};
DemoBooru* DemoBooruTest::booru_ = nullptr;

// A page is assembled from each post's cached JSON text: it must read as the posts do
// when built afresh (the single-post lookup is never cached), come back byte for byte the
// same, and follow the request's Host rather than whichever host filled the cache.
TEST_F(DemoBooruTest, DanbooruPagesFromTheCacheAreThePostsAndFollowTheHost) {
  auto cli = Client();
  const std::string path = "/posts.json?limit=7&page=2";
  auto first = cli.Get(path.c_str());
  auto again = cli.Get(path.c_str());
  ASSERT_TRUE(first && again);
  EXPECT_EQ(first->body, again->body);
  json arr = json::parse(first->body);
  ASSERT_EQ(arr.size(), 7u);
  for (const json& p : arr)
    EXPECT_EQ(p, GetJson(cli, "/posts/" + std::to_string(p["id"].get<int64_t>()) + ".json")) << p["id"];

  const std::string other_host = "localhost:" + std::to_string(booru_->port());
  auto other = cli.Get(path.c_str(), httplib::Headers{{"Host", other_host}});
  ASSERT_TRUE(other);
  json o = json::parse(other->body);
  ASSERT_EQ(o.size(), 7u);
  for (const json& p : o) EXPECT_EQ(p["file_url"].get<std::string>().rfind("http://" + other_host + "/", 0), 0u);
  auto back = cli.Get(path.c_str());
  ASSERT_TRUE(back);
  EXPECT_EQ(back->body, first->body);
}

TEST_F(DemoBooruTest, DanbooruPostsHaveDanboorusFields) {
  auto cli = Client();
  json arr = GetJson(cli, "/posts.json?limit=5");
  ASSERT_TRUE(arr.is_array());
  ASSERT_EQ(arr.size(), 5u);
  EXPECT_EQ(Ids(arr), (std::vector<int64_t>{30, 29, 28, 27, 26}));  // newest first
  std::regex iso(R"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}[-+]\d\d:\d\d)");
  std::regex md5(R"([0-9a-f]{32})");
  for (const json& p : arr) {
    for (const char* k : {"id", "md5", "file_url", "large_file_url", "preview_file_url", "tag_string",
                          "tag_string_general", "tag_string_character", "tag_string_copyright",
                          "tag_string_artist", "tag_string_meta", "rating", "image_width", "image_height",
                          "file_ext", "file_size", "created_at", "score", "parent_id", "has_large"})
      EXPECT_TRUE(p.contains(k)) << k;
    EXPECT_TRUE(p["id"].is_number_integer());
    EXPECT_TRUE(p["image_width"].is_number_integer());
    EXPECT_TRUE(p["file_size"].is_number_integer());
    EXPECT_TRUE(std::regex_match(p["md5"].get<std::string>(), md5));
    EXPECT_TRUE(std::regex_match(p["created_at"].get<std::string>(), iso)) << p["created_at"];
    EXPECT_NE(std::string("gsqe").find(p["rating"].get<std::string>()), std::string::npos);
    std::string ext = p["file_ext"];
    EXPECT_TRUE(ext == "png" || ext == "jpg") << ext;
    std::string url = p["file_url"];
    EXPECT_EQ(url, booru_->base_url() + "/data/original/" + p["md5"].get<std::string>().substr(0, 2) + "/" +
                       p["md5"].get<std::string>().substr(2, 2) + "/" + p["md5"].get<std::string>() + "." + ext);
    // tag_string is the union of the category strings.
    std::set<std::string> all = Words(p["tag_string"]), parts;
    for (const char* k : {"tag_string_general", "tag_string_character", "tag_string_copyright",
                          "tag_string_artist", "tag_string_meta"})
      for (const std::string& t : Words(p[k])) parts.insert(t);
    EXPECT_EQ(all, parts);
    // The post's tags are the renderer's truth.
    PostMeta m = *booru_->Post(p["id"].get<int64_t>());
    EXPECT_EQ(p["md5"], m.md5);
    EXPECT_EQ(p["image_width"], m.width);
    std::set<std::string> truth(m.tags.begin(), m.tags.end());
    EXPECT_EQ(all, truth);
    for (const FaceTruth& f : m.faces)
      for (const std::string& t : f.tags) EXPECT_TRUE(all.count(t)) << t;
  }
  // Created times grow with id, as on a real booru.
  EXPECT_GT(arr[0]["created_at"].get<std::string>(), arr[4]["created_at"].get<std::string>());
}

TEST_F(DemoBooruTest, DanbooruPagingVisitsEveryPostOnce) {
  auto cli = Client();
  std::vector<int64_t> seen;
  for (int page = 1; page <= 6; ++page) {
    std::vector<int64_t> ids = Ids(GetJson(cli, "/posts.json?limit=7&page=" + std::to_string(page)));
    EXPECT_EQ(ids.size(), page <= 4 ? 7u : (page == 5 ? 2u : 0u)) << page;
    seen.insert(seen.end(), ids.begin(), ids.end());
  }
  std::vector<int64_t> want;
  for (int64_t id = kPosts; id >= 1; --id) want.push_back(id);
  EXPECT_EQ(seen, want);
  // Cursors: b<id> walks down, a<id> the posts just above, both shown newest first.
  EXPECT_EQ(Ids(GetJson(cli, "/posts.json?limit=3&page=b10")), (std::vector<int64_t>{9, 8, 7}));
  EXPECT_EQ(Ids(GetJson(cli, "/posts.json?limit=3&page=a10")), (std::vector<int64_t>{13, 12, 11}));
  EXPECT_EQ(Ids(GetJson(cli, "/posts.json?limit=3&page=b2")), (std::vector<int64_t>{1}));
  std::vector<int64_t> walked;
  std::string cursor = "b" + std::to_string(kPosts + 1);
  for (;;) {
    std::vector<int64_t> ids = Ids(GetJson(cli, "/posts.json?limit=8&page=" + cursor));
    if (ids.empty()) break;
    walked.insert(walked.end(), ids.begin(), ids.end());
    cursor = "b" + std::to_string(ids.back());
  }
  EXPECT_EQ(walked, want);
  // Default limit 20; Danbooru's page cap and bad pages.
  EXPECT_EQ(GetJson(cli, "/posts.json").size(), 20u);
  GetJson(cli, "/posts.json?page=1001", 410);
  GetJson(cli, "/posts.json?page=x3", 400);
  // Single posts.
  json one = GetJson(cli, "/posts/5.json");
  EXPECT_TRUE(one.is_object());
  EXPECT_EQ(one["id"], 5);
  EXPECT_EQ(one["md5"], booru_->Post(5)->md5);
  json missing = GetJson(cli, "/posts/999.json", 404);
  EXPECT_EQ(missing["success"], false);
}

TEST_F(DemoBooruTest, DanbooruXmlIsRailsStyle) {
  auto cli = Client();
  auto res = cli.Get("/posts.xml?limit=2&page=2");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 200);
  EXPECT_NE(res->get_header_value("Content-Type").find("xml"), std::string::npos);
  const std::string& x = res->body;
  EXPECT_EQ(x.rfind("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<posts type=\"array\">\n  <post>\n", 0), 0u) << x;
  size_t posts = 0;
  for (size_t p = 0; (p = x.find("<post>", p)) != std::string::npos; ++p) ++posts;
  EXPECT_EQ(posts, 2u);
  EXPECT_NE(x.find("<id type=\"integer\">28</id>"), std::string::npos);
  EXPECT_NE(x.find("<md5>" + booru_->Post(27)->md5 + "</md5>"), std::string::npos);
  EXPECT_NE(x.find("<parent-id type=\"integer\" nil=\"true\"/>"), std::string::npos);
  EXPECT_NE(x.find("<has-large type=\"boolean\">false</has-large>"), std::string::npos);
  EXPECT_NE(x.find("<tag-string-general>"), std::string::npos);
  EXPECT_EQ(x.substr(x.size() - 9), "</posts>\n");
  auto one = cli.Get("/posts/4.xml");
  ASSERT_TRUE(one);
  EXPECT_NE(one->body.find("<id type=\"integer\">4</id>"), std::string::npos);
}

TEST_F(DemoBooruTest, TagSearchMatchesTheTruth) {
  // Tag frequencies from the truth; pick tags that split the posts.
  std::map<std::string, int> freq;
  std::vector<PostMeta> posts;
  for (int64_t id = 1; id <= kPosts; ++id) {
    posts.push_back(*booru_->Post(id));
    for (const std::string& t : posts.back().tags) freq[t]++;
  }
  std::vector<std::string> splitting;
  for (const auto& [t, n] : freq)
    if (n >= 3 && n <= kPosts - 3) splitting.push_back(t);
  ASSERT_GE(splitting.size(), 2u);
  std::sort(splitting.begin(), splitting.end(),
            [&](const std::string& a, const std::string& b) { return freq[a] > freq[b]; });
  std::string a = splitting[0], b = splitting[1];
  auto has = [](const PostMeta& p, const std::string& t) {
    return std::find(p.tags.begin(), p.tags.end(), t) != p.tags.end();
  };
  struct Case {
    std::string query;
    std::function<bool(const PostMeta&)> want;
  } cases[] = {
      {a, [&](const PostMeta& p) { return has(p, a); }},
      {a + " " + b, [&](const PostMeta& p) { return has(p, a) && has(p, b); }},
      {a + " -" + b, [&](const PostMeta& p) { return has(p, a) && !has(p, b); }},
      {"-" + a, [&](const PostMeta& p) { return !has(p, a); }},
      {"rating:g", [&](const PostMeta& p) { return p.rating == Rating::kGeneral; }},
      {"-rating:g " + a, [&](const PostMeta& p) { return p.rating != Rating::kGeneral && has(p, a); }},
      {"rating:g,s", [&](const PostMeta&) { return true; }},
      {"no_such_tag", [&](const PostMeta&) { return false; }},
      {"id:12", [&](const PostMeta& p) { return p.id == 12; }},
  };
  auto cli = Client();
  for (const Case& c : cases) {
    std::vector<int64_t> want;
    for (auto it = posts.rbegin(); it != posts.rend(); ++it)
      if (c.want(*it)) want.push_back(it->id);
    std::string q = httplib::detail::encode_query_param(c.query);
    EXPECT_EQ(Ids(GetJson(cli, "/posts.json?limit=200&tags=" + q)), want) << c.query;
    EXPECT_EQ(GetJson(cli, "/counts/posts.json?tags=" + q)["counts"]["posts"], want.size()) << c.query;
    if (c.query.find("rating:") == std::string::npos)  // Moebooru has its own letters, below
      EXPECT_EQ(Ids(GetJson(cli, "/post.json?limit=200&tags=" + q)), want) << "moebooru " << c.query;
    json g = GetJson(cli, "/index.php?page=dapi&s=post&q=index&json=1&limit=200&tags=" + q);
    EXPECT_EQ(g["@attributes"]["count"], want.size()) << "gelbooru " << c.query;
    EXPECT_EQ(g.contains("post") ? Ids(g["post"]) : std::vector<int64_t>{}, want) << "gelbooru " << c.query;
  }
  // order:id turns the list around.
  std::vector<int64_t> asc = Ids(GetJson(cli, "/posts.json?limit=3&tags=order%3Aid"));
  EXPECT_EQ(asc, (std::vector<int64_t>{1, 2, 3}));
  // Moebooru's ratings are s/q/e: its "s" is Danbooru's "g".
  EXPECT_EQ(Ids(GetJson(cli, "/post.json?limit=200&tags=rating%3As")),
            Ids(GetJson(cli, "/posts.json?limit=200&tags=rating%3Ag")));
  GetJson(cli, "/posts.json?tags=rating%3Azzz", 422);
}

TEST_F(DemoBooruTest, MoebooruPostsHaveMoeboorusFields) {
  auto cli = Client();
  json arr = GetJson(cli, "/post.json?limit=3&page=2");
  ASSERT_TRUE(arr.is_array());
  EXPECT_EQ(Ids(arr), (std::vector<int64_t>{27, 26, 25}));
  EXPECT_EQ(GetJson(cli, "/post.json").size(), 16u);  // Moebooru's default limit
  for (const json& p : arr) {
    for (const char* k : {"id", "tags", "created_at", "md5", "file_size", "file_ext", "file_url", "preview_url",
                          "sample_url", "jpeg_url", "rating", "width", "height", "status", "score"})
      EXPECT_TRUE(p.contains(k)) << k;
    EXPECT_TRUE(p["created_at"].is_number_integer());  // a Unix time, not ISO
    EXPECT_NE(std::string("sqe").find(p["rating"].get<std::string>()), std::string::npos);
    PostMeta m = *booru_->Post(p["id"].get<int64_t>());
    EXPECT_EQ(p["md5"], m.md5);
    EXPECT_EQ(p["created_at"], m.created_at);
    EXPECT_EQ(Words(p["tags"]), std::set<std::string>(m.tags.begin(), m.tags.end()));
    // The file name embeds the tags, URL-encoded; the file is served all the same.
    auto res = cli.Get(PathOf(p["file_url"]).c_str());
    ASSERT_TRUE(res);
    EXPECT_EQ(res->status, 200);
    EXPECT_EQ(internal::Md5Hex(res->body), m.md5);
  }
}

TEST_F(DemoBooruTest, GelbooruDapiJsonAndXml) {
  auto cli = Client();
  json g = GetJson(cli, "/index.php?page=dapi&s=post&q=index&json=1&limit=4&pid=1");
  ASSERT_TRUE(g.is_object());
  EXPECT_EQ(g["@attributes"]["limit"], 4);
  EXPECT_EQ(g["@attributes"]["offset"], 4);
  EXPECT_EQ(g["@attributes"]["count"], kPosts);
  ASSERT_TRUE(g["post"].is_array());
  EXPECT_EQ(Ids(g["post"]), (std::vector<int64_t>{26, 25, 24, 23}));
  for (const json& p : g["post"]) {
    for (const char* k : {"id", "md5", "file_url", "tags", "rating", "width", "height", "image", "directory",
                          "created_at", "preview_url", "sample_url", "has_children"})
      EXPECT_TRUE(p.contains(k)) << k;
    std::string md5 = p["md5"];
    EXPECT_EQ(p["directory"], md5.substr(0, 2) + "/" + md5.substr(2, 2));
    std::string image = p["image"];  // Gelbooru has no file_ext: image is md5.ext
    EXPECT_TRUE(image == md5 + ".png" || image == md5 + ".jpg") << image;
    EXPECT_TRUE(p["rating"] == "general" || p["rating"] == "sensitive") << p["rating"];
    EXPECT_EQ(p["has_children"], "false");  // Gelbooru's string booleans
    auto res = cli.Get(PathOf(p["file_url"]).c_str());
    ASSERT_TRUE(res);
    EXPECT_EQ(internal::Md5Hex(res->body), md5);
  }
  // id= lookup; an empty result has no "post" key.
  json one = GetJson(cli, "/index.php?page=dapi&s=post&q=index&json=1&id=3");
  EXPECT_EQ(Ids(one["post"]), (std::vector<int64_t>{3}));
  json none = GetJson(cli, "/index.php?page=dapi&s=post&q=index&json=1&tags=no_such_tag");
  EXPECT_EQ(none["@attributes"]["count"], 0);
  EXPECT_FALSE(none.contains("post"));
  // Without json=1: the 0.2.5+ element-style XML.
  auto xml = cli.Get("/index.php?page=dapi&s=post&q=index&limit=2");
  ASSERT_TRUE(xml);
  EXPECT_EQ(xml->body.rfind("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<posts limit=\"2\" offset=\"0\" count=\"30\">", 0),
            0u)
      << xml->body.substr(0, 200);
  EXPECT_NE(xml->get_header_value("Content-Type").find("xml"), std::string::npos);
  size_t posts = 0;
  for (size_t p = 0; (p = xml->body.find("<post>", p)) != std::string::npos; ++p) ++posts;
  EXPECT_EQ(posts, 2u);
  EXPECT_NE(xml->body.find("<id>30</id>"), std::string::npos);
  EXPECT_NE(xml->body.find("<md5>" + booru_->Post(29)->md5 + "</md5>"), std::string::npos);
  EXPECT_NE(xml->body.find("<sample_url />"), std::string::npos);
  EXPECT_EQ(xml->body.substr(xml->body.size() - 9), "</posts>\n");
  auto other = cli.Get("/index.php?page=post&s=list");
  ASSERT_TRUE(other);
  EXPECT_EQ(other->status, 404);
}

TEST_F(DemoBooruTest, RobotsTxtDisallowsTheJsonApi) {
  auto cli = Client();
  auto res = cli.Get("/robots.txt");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 200);
  EXPECT_EQ(res->get_header_value("Content-Type").rfind("text/plain", 0), 0u);
  EXPECT_EQ(res->body.rfind("User-agent: *\n", 0), 0u);
  EXPECT_NE(res->body.find("\nDisallow: /*.json\n"), std::string::npos);
  EXPECT_NE(res->body.find("\nAllow: /data/\n"), std::string::npos);
}

TEST_F(DemoBooruTest, ImagesMatchTheirMd5AndDimensions) {
  auto cli = Client();
  json arr = GetJson(cli, "/posts.json?limit=12");
  for (const json& p : arr) {
    auto res = cli.Get(PathOf(p["file_url"]).c_str());
    ASSERT_TRUE(res);
    ASSERT_EQ(res->status, 200);
    std::string ext = p["file_ext"];
    EXPECT_EQ(res->get_header_value("Content-Type"), ext == "png" ? "image/png" : "image/jpeg");
    EXPECT_EQ(res->get_header_value("Content-Length"), std::to_string(p["file_size"].get<int64_t>()));
    EXPECT_EQ(internal::Md5Hex(res->body), p["md5"]);
    cv::Mat img = cv::imdecode(std::vector<uchar>(res->body.begin(), res->body.end()), cv::IMREAD_COLOR);
    ASSERT_FALSE(img.empty());
    EXPECT_EQ(img.cols, p["image_width"]);
    EXPECT_EQ(img.rows, p["image_height"]);
    auto pre = cli.Get(PathOf(p["preview_file_url"]).c_str());
    ASSERT_TRUE(pre);
    cv::Mat small = cv::imdecode(std::vector<uchar>(pre->body.begin(), pre->body.end()), cv::IMREAD_COLOR);
    ASSERT_FALSE(small.empty());
    EXPECT_LE(std::max(small.cols, small.rows), 180);
  }
  // Unknown files and mismatched directories are 404.
  auto res = cli.Get("/data/original/00/00/00000000000000000000000000000000.png");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 404);
  std::string md5 = arr[0]["md5"];
  res = cli.Get(("/data/original/ff/ff/" + md5 + "." + arr[0]["file_ext"].get<std::string>()).c_str());
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, md5.compare(0, 4, "ffff") == 0 ? 200 : 404);
}

TEST(DemoBooru, ALazyServerKnowsFileUrlsFromAnEarlierRun) {
  // A crawler resuming against a restarted server asks for files before any API page.
  std::string path, md5;
  {
    auto first = StartBooru("", 12, /*prerender=*/true);
    httplib::Client cli("127.0.0.1", first->port());
    json p = GetJson(cli, "/posts/5.json");
    path = PathOf(p["file_url"]);
    md5 = p["md5"];
  }
  auto second = StartBooru("", 12, /*prerender=*/false);
  EXPECT_EQ(second->stats().rendered, 0);
  httplib::Client cli("127.0.0.1", second->port());
  auto res = cli.Get(path.c_str());
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 200);
  EXPECT_EQ(internal::Md5Hex(res->body), md5);
  EXPECT_EQ(second->stats().rendered, 12);
}

TEST_F(DemoBooruTest, ManyClientsAtOnceGetTheSameBytes) {
  auto cli = Client();
  std::string path = PathOf(GetJson(cli, "/posts/3.json")["file_url"]);
  std::vector<std::string> md5s(8);
  std::vector<std::thread> threads;
  for (int i = 0; i < 8; ++i) {
    threads.emplace_back([&, i] {
      httplib::Client cli("127.0.0.1", booru_->port());
      cli.set_keep_alive(true);
      for (int k = 0; k < 3; ++k) {
        auto res = cli.Get(path.c_str());
        if (res && res->status == 200) md5s[i] = internal::Md5Hex(res->body);
        auto page = cli.Get(("/posts.json?limit=5&page=" + std::to_string(1 + (i + k) % 6)).c_str());
        if (!page || page->status != 200) md5s[i] = "page failed";
      }
    });
  }
  for (auto& t : threads) t.join();
  for (const std::string& m : md5s) EXPECT_EQ(m, booru_->Post(3)->md5);
  EXPECT_GE(booru_->stats().requests, 48);
}

TEST_F(DemoBooruTest, TruthDumpIsJsonLinesOfDesignMdsFormat) {
  std::string path = ::testing::TempDir() + "/demo_truth.jsonl";
  ASSERT_TRUE(booru_->WriteTruth(path).ok());
  std::ifstream in(path);
  std::string line;
  int64_t n = 0;
  int faces = 0, kinds_seen = 0;
  std::set<std::string> kinds;
  while (std::getline(in, line)) {
    ++n;
    json j = json::parse(line, nullptr, false);
    ASSERT_FALSE(j.is_discarded()) << line;
    for (const char* k : {"remote_id", "md5", "width", "height", "kind", "duplicate_of", "faces"})
      ASSERT_TRUE(j.contains(k)) << k << " in " << line;
    EXPECT_EQ(j["remote_id"], std::to_string(n));  // one line per post, in id order
    PostMeta m = *booru_->Post(n);
    EXPECT_EQ(j["md5"], m.md5);
    EXPECT_EQ(j["width"], m.width);
    std::string kind = j["kind"];
    kinds.insert(kind);
    EXPECT_TRUE(kind == "normal" || kind == "noface" || kind == "monochrome" || kind == "duplicate") << kind;
    if (kind == "duplicate") {
      ASSERT_TRUE(j["duplicate_of"].is_string());
      EXPECT_LT(std::stoll(j["duplicate_of"].get<std::string>()), n);
    } else {
      EXPECT_TRUE(j["duplicate_of"].is_null());
    }
    if (kind == "noface") EXPECT_TRUE(j["faces"].empty());
    for (const json& f : j["faces"]) {
      for (const char* k : {"x", "y", "w", "h", "tags"}) ASSERT_TRUE(f.contains(k)) << k;
      EXPECT_GT(f["w"].get<int>(), 0);
      EXPECT_LE(f["x"].get<int>() + f["w"].get<int>(), m.width + f["w"].get<int>() / 2);
      EXPECT_TRUE(f["tags"].is_array());
      ++faces;
    }
    EXPECT_EQ(j["fault"]["name"], "none");
    EXPECT_EQ(j["fault"]["stored"], true);
  }
  EXPECT_EQ(n, kPosts);
  EXPECT_GT(faces, kPosts / 2);
  kinds_seen = static_cast<int>(kinds.size());
  EXPECT_GE(kinds_seen, 2);
  std::filesystem::remove(path);
}

// ---- Faults: a spec with one fault at rate 1 puts it on every post. ----

struct FaultServer {
  explicit FaultServer(const std::string& spec, int posts = 8) : booru(StartBooru(spec, posts)) {}
  httplib::Client Client(int read_timeout_ms = 30000) {
    httplib::Client cli("127.0.0.1", booru->port());
    cli.set_read_timeout(read_timeout_ms / 1000, (read_timeout_ms % 1000) * 1000);
    return cli;
  }
  std::string FilePath(int64_t id) {
    auto cli = Client();
    std::string target = "/posts/" + std::to_string(id) + ".json";
    for (int i = 0; i < booru->fault_spec().fail_first; ++i)  // past any api429
      if (ApiRateLimited(kSeed, target, booru->fault_spec())) cli.Get(target.c_str());
    return PathOf(GetJson(cli, target)["file_url"]);
  }
  std::unique_ptr<DemoBooru> booru;
};

// The healthy bytes of post `id` (same seed, no faults).
std::string GoodBytes(int64_t id) {
  static auto clean = StartBooru("", 8);
  httplib::Client cli("127.0.0.1", clean->port());
  auto res = cli.Get(PathOf(GetJson(cli, "/posts/" + std::to_string(id) + ".json")["file_url"]).c_str());
  return res ? res->body : "";
}

TEST(DemoBooruFaults, Rate429ThenTheImage) {
  FaultServer s("rate429=1,retry_after=3");
  auto cli = s.Client();
  std::string path = s.FilePath(2);
  for (int attempt = 1; attempt <= 2; ++attempt) {
    auto res = cli.Get(path.c_str());
    ASSERT_TRUE(res);
    EXPECT_EQ(res->status, 429) << attempt;
    EXPECT_EQ(res->get_header_value("Retry-After"), "3");
  }
  auto res = cli.Get(path.c_str());
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 200);
  EXPECT_EQ(internal::Md5Hex(res->body), s.booru->Post(2)->md5);
  EXPECT_TRUE(s.booru->Post(2)->fault.stored);
  // The API itself is never faulted.
  EXPECT_EQ(GetJson(cli, "/posts.json?limit=3").size(), 3u);
  EXPECT_EQ(s.booru->stats().faults_injected, 2);
}

TEST(DemoBooruFaults, Transient5xxThenTheImage) {
  FaultServer s("5xx=1,fail_first=3");
  auto cli = s.Client();
  std::string path = s.FilePath(4);
  for (int attempt = 1; attempt <= 3; ++attempt) {
    auto res = cli.Get(path.c_str());
    ASSERT_TRUE(res);
    EXPECT_TRUE(res->status == 500 || res->status == 502 || res->status == 503) << res->status;
  }
  auto res = cli.Get(path.c_str());
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 200);
  EXPECT_EQ(internal::Md5Hex(res->body), s.booru->Post(4)->md5);
}

TEST(DemoBooruFaults, Permanent5xxNeverClears) {
  FaultServer s("5xx_perm=1");
  auto cli = s.Client();
  std::string path = s.FilePath(1);
  for (int attempt = 1; attempt <= 6; ++attempt) {
    auto res = cli.Get(path.c_str());
    ASSERT_TRUE(res);
    EXPECT_EQ(res->status, 500);
  }
  EXPECT_FALSE(s.booru->Post(1)->fault.stored);
  EXPECT_EQ(s.booru->Post(1)->fault.reason, "http_500");
}

TEST(DemoBooruFaults, StallOutlastsAShortTimeout) {
  FaultServer s("stall=1,stall_ms=1500");
  std::string path = s.FilePath(3);
  PostMeta m = *s.booru->Post(3);
  // A raw reader with a short timeout sees the headers (full length) and part of the body.
  Raw raw = RawGet(s.booru->port(), path, 300);
  EXPECT_TRUE(raw.timed_out);
  EXPECT_EQ(raw.head.rfind("HTTP/1.1 200", 0), 0u) << raw.head;
  EXPECT_EQ(raw.Header("Content-Length"), std::to_string(m.file_size));
  EXPECT_GT(raw.body.size(), 0u);
  EXPECT_LT(static_cast<int64_t>(raw.body.size()), m.file_size);
  // An httplib client with a short timeout fails; a patient one gets the whole file.
  auto impatient = s.Client(300);
  auto res = impatient.Get(path.c_str());
  EXPECT_FALSE(res);
  auto patient = s.Client(10000);
  res = patient.Get(path.c_str());
  ASSERT_TRUE(res);
  EXPECT_EQ(internal::Md5Hex(res->body), m.md5);
}

TEST(DemoBooruFaults, StopCutsAStallShort) {
  FaultServer s("stall=1,stall_ms=600000");
  std::string path = s.FilePath(1);
  bool got_body = true;
  using Clock = std::chrono::steady_clock;
  Clock::time_point asked, answered;
  std::thread t([&] {
    auto cli = s.Client(120000);
    asked = Clock::now();
    auto res = cli.Get(path.c_str());
    answered = Clock::now();
    got_body = res && res->status == 200 && internal::Md5Hex(res->body) == s.booru->Post(1)->md5;
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  auto stop_at = Clock::now();
  s.booru->Stop();  // would wait ten minutes if the stall were not interrupted
  auto stopped = Clock::now();
  t.join();
  EXPECT_FALSE(got_body);
  auto ms = [](Clock::duration d) { return std::chrono::duration_cast<std::chrono::milliseconds>(d).count(); };
  // The request was inside the stall until Stop() (not refused at once)...
  EXPECT_GE(ms(answered - asked), 400) << "the request ended before Stop(): it never stalled";
  EXPECT_GE(ms(answered - stop_at), 0);
  // ...and Stop() cut it short: seconds, not the stall's ten minutes.
  EXPECT_LT(ms(stopped - stop_at), 5000) << "Stop() waited for the stall";
  EXPECT_LT(ms(answered - stop_at), 5000) << "the stalled client was not released";
}

TEST(DemoBooruFaults, TruncatedBodyIsShorterThanItsContentLength) {
  FaultServer s("truncate=1");
  std::string path = s.FilePath(5);
  PostMeta m = *s.booru->Post(5);
  Raw raw = RawGet(s.booru->port(), path, 5000);
  EXPECT_FALSE(raw.timed_out);  // the server closed the connection
  EXPECT_EQ(raw.Header("Content-Length"), std::to_string(m.file_size));
  EXPECT_EQ(static_cast<int64_t>(raw.body.size()), m.file_size / 2);
  auto cli = s.Client();
  auto res = cli.Get(path.c_str());
  EXPECT_FALSE(res);  // httplib notices the short read
}

TEST(DemoBooruFaults, CorruptBytesKeepTheLengthButNotTheContent) {
  FaultServer s("corrupt=1");
  std::string path = s.FilePath(6);
  PostMeta m = *s.booru->Post(6);
  std::string good = GoodBytes(6);
  ASSERT_EQ(internal::Md5Hex(good), m.md5);  // the API reports the real image's md5
  auto cli = s.Client();
  auto res = cli.Get(path.c_str());
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 200);
  EXPECT_EQ(res->get_header_value("Content-Type"), m.file_ext == "png" ? "image/png" : "image/jpeg");
  ASSERT_EQ(res->body.size(), good.size());
  EXPECT_NE(internal::Md5Hex(res->body), m.md5);
  EXPECT_EQ(res->body.substr(0, 64), good.substr(0, 64));  // still looks like an image
  size_t same = 0;
  for (size_t i = 64; i < good.size(); ++i) same += res->body[i] == good[i];
  EXPECT_EQ(same, 0u);
}

TEST(DemoBooruFaults, WrongContentTypeServesAnHtmlPage) {
  FaultServer s("ctype=1");
  auto cli = s.Client();
  auto res = cli.Get(s.FilePath(2).c_str());
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 200);
  EXPECT_EQ(res->get_header_value("Content-Type").rfind("text/html", 0), 0u);
  EXPECT_EQ(res->body.rfind("<!DOCTYPE html>", 0), 0u);
}

TEST(DemoBooruFaults, RedirectLoopNeverReachesTheImage) {
  FaultServer s("redirect_loop=1");
  std::string path = s.FilePath(7);
  auto cli = s.Client();
  std::string url = path;
  std::vector<std::string> hops;
  for (int i = 0; i < 6; ++i) {
    auto res = cli.Get(url.c_str());
    ASSERT_TRUE(res);
    ASSERT_EQ(res->status, 302) << url;
    std::string loc = res->get_header_value("Location");
    ASSERT_EQ(loc.rfind(s.booru->base_url(), 0), 0u) << loc;
    url = PathOf(loc);
    hops.push_back(url);
  }
  EXPECT_EQ(hops[0], "/redirect/7/a");
  EXPECT_EQ(hops[1], "/redirect/7/b");
  EXPECT_EQ(hops[2], path);  // back where it started
  EXPECT_EQ(hops[3], hops[0]);
  auto follower = s.Client();
  follower.set_follow_location(true);
  auto res = follower.Get(path.c_str());
  EXPECT_FALSE(res);
  EXPECT_EQ(res.error(), httplib::Error::ExceedRedirectCount);
}

TEST(DemoBooruFaults, RedirectToANonHttpScheme) {
  FaultServer s("redirect_scheme=1");
  auto cli = s.Client();
  std::set<std::string> schemes;
  for (int64_t id = 1; id <= 8; ++id) {
    auto res = cli.Get(s.FilePath(id).c_str());
    ASSERT_TRUE(res);
    EXPECT_EQ(res->status, 302);
    std::string loc = res->get_header_value("Location");
    std::string scheme = loc.substr(0, loc.find("://"));
    EXPECT_TRUE(scheme == "ftp" || scheme == "file") << loc;
    schemes.insert(scheme);
  }
  EXPECT_EQ(schemes.size(), 2u);  // both kinds among 8 posts
}

TEST(DemoBooruFaults, OversizeSendsTheWholeHugeBody) {
  FaultServer s("oversize=1,oversize_mb=3");
  auto cli = s.Client();
  std::set<std::string> styles;
  for (int64_t id = 1; id <= 8; ++id) {
    std::string path = s.FilePath(id);
    PostMeta m = *s.booru->Post(id);
    auto res = cli.Get(path.c_str());
    ASSERT_TRUE(res);
    EXPECT_EQ(res->status, 200);
    EXPECT_EQ(res->body.size(), 3u << 20);
    std::string good = GoodBytes(id);
    EXPECT_EQ(res->body.substr(0, good.size()), good);
    if (res->has_header("Content-Length")) {
      EXPECT_EQ(res->get_header_value("Content-Length"), std::to_string(3 << 20));
      styles.insert("length");
    } else {
      EXPECT_EQ(res->get_header_value("Transfer-Encoding"), "chunked");
      styles.insert("chunked");
    }
    EXPECT_EQ(m.fault.reason, "too_large");
  }
  EXPECT_EQ(styles.size(), 2u);
}

TEST(DemoBooruFaults, HugeDimensionsInATinyPng) {
  FaultServer s("huge_dims=1");
  auto cli = s.Client();
  json p = GetJson(cli, "/posts/8.json");
  EXPECT_EQ(p["image_width"], 100000);
  EXPECT_EQ(p["image_height"], 100000);
  EXPECT_EQ(p["file_ext"], "png");
  auto res = cli.Get(PathOf(p["file_url"]).c_str());
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 200);
  EXPECT_EQ(res->get_header_value("Content-Type"), "image/png");
  EXPECT_EQ(internal::Md5Hex(res->body), p["md5"]);  // only a pixel-count check catches it
  EXPECT_LT(res->body.size(), 200u);
  ASSERT_GE(res->body.size(), 24u);
  const auto* b = reinterpret_cast<const unsigned char*>(res->body.data());
  EXPECT_EQ(std::string(res->body.data() + 12, 4), "IHDR");
  uint32_t w = (b[16] << 24) | (b[17] << 16) | (b[18] << 8) | b[19];
  uint32_t h = (b[20] << 24) | (b[21] << 16) | (b[22] << 8) | b[23];
  EXPECT_EQ(w, 100000u);
  EXPECT_EQ(h, 100000u);
  cv::Mat img;
  try {
    img = cv::imdecode(std::vector<uchar>(res->body.begin(), res->body.end()), cv::IMREAD_COLOR);
  } catch (const cv::Exception&) {
  }
  EXPECT_TRUE(img.empty());  // OpenCV refuses 10^10 pixels
  // Each post's forged file is its own (md5s stay unique).
  EXPECT_NE(GetJson(cli, "/posts/7.json")["md5"], p["md5"]);
}

TEST(DemoBooruFaults, NoAiHeader) {
  FaultServer s("noai=1");
  auto cli = s.Client();
  auto res = cli.Get(s.FilePath(1).c_str());
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 200);
  EXPECT_EQ(res->get_header_value("X-Robots-Tag"), "noai, noimageai");
  EXPECT_EQ(internal::Md5Hex(res->body), s.booru->Post(1)->md5);
}

TEST(DemoBooruFaults, Api429HoldsBackPredictedPagesOnly) {
  FaultServer s("api429=1,retry_after=2,fail_first=1");
  auto cli = s.Client();
  for (const std::string target : {"/posts.json?limit=3", "/post.json?limit=3", "/posts/2.json",
                                   "/index.php?page=dapi&s=post&q=index&json=1&limit=3"}) {
    auto res = cli.Get(target.c_str());
    ASSERT_TRUE(res);
    EXPECT_EQ(res->status, 429) << target;
    EXPECT_EQ(res->get_header_value("Retry-After"), "2");
    res = cli.Get(target.c_str());
    ASSERT_TRUE(res);
    EXPECT_EQ(res->status, 200) << target;
  }
  // At a partial rate, exactly the predicted targets are held back.
  const std::string spec = "api429=0.5";
  FaultServer half(spec, 40);
  auto hc = half.Client();
  int limited = 0;
  for (int page = 1; page <= 20; ++page) {
    std::string target = "/posts.json?limit=2&page=" + std::to_string(page);
    bool want = ApiRateLimited(kSeed, target, *ParseFaultSpec(spec));
    limited += want;
    auto res = hc.Get(target.c_str());
    ASSERT_TRUE(res);
    EXPECT_EQ(res->status, want ? 429 : 200) << target;
  }
  EXPECT_GT(limited, 0);
  EXPECT_LT(limited, 20);
  // Images are not affected by api429.
  auto img = hc.Get(half.FilePath(1).c_str());
  ASSERT_TRUE(img);
  EXPECT_EQ(img->status, 200);
}

TEST(DemoBooruFaults, MixedSpecFaultsOnlyThePredictedPosts) {
  const std::string spec = "rate429=0.2,5xx_perm=0.2,ctype=0.2";
  FaultServer s(spec, 24);
  auto cli = s.Client();
  int faulted = 0;
  for (int64_t id = 1; id <= 24; ++id) {
    FaultVerdict v = *FaultFor(kSeed, id, spec);
    auto res = cli.Get(s.FilePath(id).c_str());
    ASSERT_TRUE(res);
    int want = v.fault == Fault::kRate429 ? 429 : v.fault == Fault::k5xxPermanent ? 500 : 200;
    EXPECT_EQ(res->status, want) << id << " " << FaultName(v.fault);
    bool html = res->get_header_value("Content-Type").rfind("text/html", 0) == 0;
    EXPECT_EQ(html, v.fault == Fault::kContentType || v.fault == Fault::k5xxPermanent) << id;
    faulted += v.fault != Fault::kNone;
    EXPECT_EQ(s.booru->Post(id)->fault.fault, v.fault);
  }
  EXPECT_GT(faulted, 0);
  EXPECT_LT(faulted, 24);
}

// ---- `moeforge demo-booru`, the real binary ----

TEST(DemoBooruCommand, PrintsListeningLineServesAndStopsOnSigterm) {
  const char* bin = std::getenv("MOEFORGE_BIN");
  if (!bin || !std::filesystem::exists(bin)) GTEST_SKIP() << "MOEFORGE_BIN not built";
  std::string truth = ::testing::TempDir() + "/cmd_truth.jsonl";
  int out[2];
  ASSERT_EQ(pipe(out), 0);
  pid_t pid = fork();
  if (pid == 0) {
    dup2(out[1], 1);
    close(out[0]);
    execl(bin, bin, "demo-booru", "--posts", "6", "--seed", "3", "--dump-truth", truth.c_str(), nullptr);
    _exit(127);
  }
  close(out[1]);
  struct Reaper {  // a failed assertion must not leave the server running
    pid_t pid;
    ~Reaper() {
      if (pid > 0 && waitpid(pid, nullptr, WNOHANG) == 0) {
        kill(pid, SIGKILL);
        waitpid(pid, nullptr, 0);
      }
    }
  } reaper{pid};
  FILE* f = fdopen(out[0], "r");
  char line[256] = {0};
  ASSERT_NE(fgets(line, sizeof line, f), nullptr);
  std::cmatch m;
  ASSERT_TRUE(std::regex_match(line, m, std::regex(R"(listening on http://127\.0\.0\.1:(\d+)\n)"))) << line;
  int port = std::stoi(m[1].str());
  httplib::Client cli("127.0.0.1", port);
  json arr = GetJson(cli, "/posts.json");
  EXPECT_EQ(Ids(arr), (std::vector<int64_t>{6, 5, 4, 3, 2, 1}));
  // The truth file is complete before the line is printed.
  std::ifstream in(truth);
  int lines = 0;
  for (std::string l; std::getline(in, l);) ++lines;
  EXPECT_EQ(lines, 6);
  kill(pid, SIGTERM);
  std::string rest;
  for (char buf[256]; fgets(buf, sizeof buf, f);) rest += buf;
  fclose(f);
  int status = 0;
  waitpid(pid, &status, 0);
  reaper.pid = 0;
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
  EXPECT_NE(rest.find("demo-booru:"), std::string::npos) << rest;  // the closing summary
  std::filesystem::remove(truth);
}

TEST(DemoBooruCommand, BadFaultSpecExitsTwo) {
  const char* bin = std::getenv("MOEFORGE_BIN");
  if (!bin || !std::filesystem::exists(bin)) GTEST_SKIP() << "MOEFORGE_BIN not built";
  std::string cmd = std::string(bin) + " demo-booru --faults teapot=1 >/dev/null 2>&1";
  int rc = std::system(cmd.c_str());
  EXPECT_TRUE(WIFEXITED(rc));
  EXPECT_EQ(WEXITSTATUS(rc), 2);
}

}  // namespace
}  // namespace moeforge::demo
