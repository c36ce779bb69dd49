#include "core/http.h"
#include "core/process.h"
#include "core/strings.h"

#include <curl/curl.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <future>
#include <mutex>
#include <random>
#include <thread>
#include <unordered_map>
#include <unordered_set>

namespace moeforge::http {

namespace {

double MonoNow() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

void GlobalInit() {
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

}  // namespace

std::string Response::Header(const std::string& lower_name) const {
  auto it = headers.find(lower_name);
  return it == headers.end() ? std::string() : it->second;
}

std::string Response::Reason() const {
  if (!error.empty()) return error;
  if (status >= 200 && status < 300) return "ok";
  return "http_" + std::to_string(status);
}

std::string DefaultUserAgent(const std::string& contact) {
  return "moeforge/0.1.0 (+" + (contact.empty() ? std::string("https://github.com/moeforge/moeforge") : contact) +
         ")";
}

std::string OriginOf(const std::string& url) {
  GlobalInit();
  CURLU* u = curl_url();
  std::string out;
  if (curl_url_set(u, CURLUPART_URL, url.c_str(), 0) == CURLUE_OK) {
    char *scheme = nullptr, *host = nullptr, *port = nullptr;
    if (curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) == CURLUE_OK &&
        curl_url_get(u, CURLUPART_HOST, &host, 0) == CURLUE_OK &&
        curl_url_get(u, CURLUPART_PORT, &port, CURLU_DEFAULT_PORT) == CURLUE_OK) {
      out = AsciiLower(std::string(scheme) + "://" + host + ":" + port);
    }
    curl_free(scheme);
    curl_free(host);
    curl_free(port);
  }
  curl_url_cleanup(u);
  return out;
}

std::string HostOf(const std::string& url) {
  GlobalInit();
  CURLU* u = curl_url();
  std::string out;
  if (curl_url_set(u, CURLUPART_URL, url.c_str(), 0) == CURLUE_OK) {
    char* host = nullptr;
    if (curl_url_get(u, CURLUPART_HOST, &host, 0) == CURLUE_OK) out = AsciiLower(host);
    curl_free(host);
  }
  curl_url_cleanup(u);
  return out;
}

std::string PathAndQuery(const std::string& url) {
  GlobalInit();
  CURLU* u = curl_url();
  std::string out = "/";
  if (curl_url_set(u, CURLUPART_URL, url.c_str(), 0) == CURLUE_OK) {
    char *path = nullptr, *query = nullptr;
    if (curl_url_get(u, CURLUPART_PATH, &path, 0) == CURLUE_OK && path && *path) out = path;
    if (curl_url_get(u, CURLUPART_QUERY, &query, 0) == CURLUE_OK && query) out += std::string("?") + query;
    curl_free(path);
    curl_free(query);
  }
  curl_url_cleanup(u);
  return out;
}

std::string ResolveUrl(const std::string& base, const std::string& ref) {
  GlobalInit();
  CURLU* u = curl_url();
  std::string out;
  if (curl_url_set(u, CURLUPART_URL, base.c_str(), 0) == CURLUE_OK &&
      curl_url_set(u, CURLUPART_URL, ref.c_str(), CURLU_NON_SUPPORT_SCHEME) == CURLUE_OK) {
    char* full = nullptr;
    if (curl_url_get(u, CURLUPART_URL, &full, 0) == CURLUE_OK) out = full;
    curl_free(full);
  }
  curl_url_cleanup(u);
  // Fragments never reach the server.
  auto hash = out.find('#');
  if (hash != std::string::npos) out.resize(hash);
  return out;
}

bool IsLoopbackHost(const std::string& host) {
  std::string h = AsciiLower(host);
  if (!h.empty() && h.front() == '[') h = h.substr(1, h.size() - 2);
  return h == "localhost" || h == "::1" || h.rfind("127.", 0) == 0;
}

std::string UrlEncode(const std::string& s) {
  static const char* hex = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : s) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += hex[c >> 4];
      out += hex[c & 15];
    }
  }
  return out;
}

bool IsChallenge(int status, const std::map<std::string, std::string>& headers, const std::string& body) {
  if (status != 403 && status != 503 && status != 429) return false;
  auto h = headers.find("cf-mitigated");
  if (h != headers.end() && h->second.find("challenge") != std::string::npos) return true;
  auto srv = headers.find("server");
  bool cloudflare = srv != headers.end() && srv->second.find("cloudflare") != std::string::npos;
  std::string head = body.substr(0, 16384);
  bool markers = head.find("<title>Just a moment...</title>") != std::string::npos ||
                 head.find("/cdn-cgi/challenge-platform/") != std::string::npos ||
                 head.find("cf_chl_opt") != std::string::npos;
  return markers && (cloudflare || status != 429);
}

double ParseRetryAfter(const std::string& value, double now_unix) {
  std::string v = Trim(value);
  if (v.empty()) return -1;
  if (std::all_of(v.begin(), v.end(), [](char c) { return std::isdigit(static_cast<unsigned char>(c)); }))
    return std::stod(v);
  time_t t = curl_getdate(v.c_str(), nullptr);
  if (t < 0) return -1;
  return std::max(0.0, static_cast<double>(t) - now_unix);
}

// ---------------------------------------------------------------------------------
// The engine: one thread owns the multi handle and every easy handle.

namespace {

struct Item {
  Request req;
  std::function<void(Response)> done;
  Response resp;
  std::string origin;
  double first_start = 0;
  double not_before = 0;
  // per attempt
  CURL* easy = nullptr;  // the attempt's handle, while it runs
  bool too_large = false;
  bool redirected = false;
  bool stalled = false;
  double last_byte = 0;      // monotonic time the last header or body byte arrived
  double stall_timeout = 0;
  curl_slist* hdrs = nullptr;
};

struct HostState {
  std::deque<Item*> queue;
  int active = 0;
  double next_start = 0;
  double interval = -1;  // <0: the client's default
  int max_per = -1;
  int64_t completed = 0;  // attempts finished: the connection slow start's progress
  bool challenged = false;  // a challenge page came back: nothing more is sent
  double jitter = -1;       // <0: the client's default
};

size_t OnBody(char* p, size_t size, size_t n, void* ud) {
  auto* it = static_cast<Item*>(ud);
  size_t len = size * n;
  it->last_byte = MonoNow();
  if (it->req.max_bytes > 0 && static_cast<int64_t>(it->resp.body.size() + len) > it->req.max_bytes) {
    it->too_large = true;
    return 0;  // aborts the transfer with CURLE_WRITE_ERROR
  }
  if (it->resp.body.empty() && it->easy != nullptr) {
    // One allocation for the whole body when the server says how long it is (capped by
    // max_bytes), instead of a doubling chain of copies: a crawl moves every image's
    // bytes through here.
    curl_off_t declared = -1;
    if (curl_easy_getinfo(it->easy, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &declared) == CURLE_OK && declared > 0 &&
        (it->req.max_bytes <= 0 || declared <= it->req.max_bytes) && declared <= (int64_t{1} << 30))
      it->resp.body.reserve(static_cast<size_t>(declared));
  }
  it->resp.body.append(p, len);
  return len;
}

size_t OnHeader(char* p, size_t size, size_t n, void* ud) {
  auto* it = static_cast<Item*>(ud);
  size_t len = size * n;
  it->last_byte = MonoNow();
  std::string line(p, len);
  if (line.rfind("HTTP/", 0) == 0) {
    // A new response (after a redirect or a 100-continue): forget the last one's headers.
    if (!it->resp.headers.empty()) it->redirected = true;
    it->resp.headers.clear();
    return len;
  }
  auto colon = line.find(':');
  if (colon == std::string::npos) return len;
  std::string name = AsciiLower(Trim(line.substr(0, colon)));
  std::string value = Trim(line.substr(colon + 1));
  it->resp.headers[name] = value;
  if (name == "content-length" && it->req.max_bytes > 0) {
    char* end = nullptr;
    long long cl = std::strtoll(value.c_str(), &end, 10);
    // Only the final response's length matters; a redirect's body is small anyway.
    if (end != value.c_str() && cl > it->req.max_bytes && cl > 64 * 1024) {
      it->too_large = true;
      return 0;
    }
  }
  return len;
}

// libcurl's low-speed check averages over seconds, so a server that sends a burst and
// then nothing keeps a transfer alive far longer than asked: measure the silence here.
int OnProgress(void* ud, curl_off_t, curl_off_t, curl_off_t, curl_off_t) {
  auto* it = static_cast<Item*>(ud);
  if (it->stall_timeout > 0 && MonoNow() - it->last_byte > it->stall_timeout) {
    it->stalled = true;
    return 1;  // CURLE_ABORTED_BY_CALLBACK
  }
  return 0;
}

}  // namespace

struct Client::Engine {
  ClientOptions opts;
  std::string ua;
  CURLM* multi = nullptr;
  std::thread thread;

  mutable std::mutex mu;
  std::deque<Item*> inbox;
  struct Policy {
    double interval;
    int max_per;
    double jitter;
  };
  std::unordered_map<std::string, Policy> policy_inbox;
  bool stop = false;
  std::atomic<int64_t> pending{0};
  ClientStats stats;  // guarded by mu

  // engine-thread state
  std::unordered_map<std::string, HostState> hosts;
  std::vector<Item*> delayed;
  std::vector<CURL*> idle_easy;
  std::unordered_set<CURL*> running_easy;
  int active = 0;
  std::mt19937_64 rng{std::random_device{}()};

  explicit Engine(ClientOptions o) : opts(std::move(o)) {
    GlobalInit();
    ua = opts.user_agent.empty() ? DefaultUserAgent(opts.contact) : opts.user_agent;
    multi = curl_multi_init();
    curl_multi_setopt(multi, CURLMOPT_PIPELINING, CURLPIPE_MULTIPLEX);
    curl_multi_setopt(multi, CURLMOPT_MAXCONNECTS, static_cast<long>(std::max(16, opts.max_total * 2)));
    thread = std::thread([this] { Loop(); });
  }

  ~Engine() {
    {
      std::lock_guard<std::mutex> l(mu);
      stop = true;
    }
    curl_multi_wakeup(multi);
    thread.join();
    for (CURL* e : idle_easy) curl_easy_cleanup(e);
    curl_multi_cleanup(multi);
  }

  double Jitter01() { return std::uniform_real_distribution<double>(0.0, 1.0)(rng); }

  HostState& Host(const std::string& origin) { return hosts[origin]; }

  double IntervalOf(const HostState& h) { return h.interval >= 0 ? h.interval : opts.min_interval_s; }
  // A host's concurrency opens up as transfers to it complete (4, then one more per
  // completion), so connections are opened a few at a time and then reused: a burst of
  // simultaneous connects overflows small listen backlogs (cpp-httplib's is 5), and the
  // dropped SYNs cost a second each.
  int MaxPerOf(const HostState& h) {
    int cap = h.max_per > 0 ? h.max_per : opts.max_per_host;
    return static_cast<int>(std::min<int64_t>(cap, 4 + h.completed));
  }

  void Complete(Item* it) {
    it->resp.seconds = MonoNow() - it->first_start;
    {
      std::lock_guard<std::mutex> l(mu);
      stats.completed++;
      stats.bytes += static_cast<int64_t>(it->resp.body.size());
    }
    auto done = std::move(it->done);
    Response r = std::move(it->resp);
    delete it;
    pending--;
    if (done) done(std::move(r));
  }

  void Start(Item* it, HostState& h, double now) {
    CURL* e;
    if (!idle_easy.empty()) {
      e = idle_easy.back();
      idle_easy.pop_back();
      curl_easy_reset(e);
    } else {
      e = curl_easy_init();
    }
    if (it->resp.attempts == 0) it->first_start = now;
    it->resp.attempts++;
    it->resp.body.clear();
    it->resp.headers.clear();
    it->resp.status = 0;
    it->too_large = false;
    it->redirected = false;
    it->stalled = false;
    it->last_byte = now;
    it->stall_timeout = opts.stall_timeout_s;
    if (it->hdrs) curl_slist_free_all(it->hdrs);
    it->hdrs = nullptr;
    for (const auto& hd : it->req.headers) it->hdrs = curl_slist_append(it->hdrs, hd.c_str());
    if (!it->req.if_none_match.empty())
      it->hdrs = curl_slist_append(it->hdrs, ("If-None-Match: " + it->req.if_none_match).c_str());
    if (!it->req.if_modified_since.empty())
      it->hdrs = curl_slist_append(it->hdrs, ("If-Modified-Since: " + it->req.if_modified_since).c_str());

    curl_easy_setopt(e, CURLOPT_URL, it->req.url.c_str());
    curl_easy_setopt(e, CURLOPT_PRIVATE, it);
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(e, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 1L);
    curl_easy_setopt(e, CURLOPT_MAXREDIRS, static_cast<long>(opts.max_redirects));
    curl_easy_setopt(e, CURLOPT_USERAGENT, ua.c_str());
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, it->hdrs);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT, opts.connect_timeout_s);
    curl_easy_setopt(e, CURLOPT_LOW_SPEED_LIMIT, opts.low_speed_bytes);
    curl_easy_setopt(e, CURLOPT_LOW_SPEED_TIME, opts.low_speed_time_s);
    curl_easy_setopt(e, CURLOPT_TIMEOUT, opts.total_timeout_s);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_ACCEPT_ENCODING, "");
    curl_easy_setopt(e, CURLOPT_HTTP_VERSION, static_cast<long>(CURL_HTTP_VERSION_2TLS));
    if (!opts.ca_file.empty()) curl_easy_setopt(e, CURLOPT_CAINFO, opts.ca_file.c_str());
    // Waiting for a connection that might multiplex only pays off where HTTP/2 can be
    // negotiated (TLS ALPN); on plain http it only delays transfers.
    if (it->origin.rfind("https://", 0) == 0) curl_easy_setopt(e, CURLOPT_PIPEWAIT, 1L);
    curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(e, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(e, CURLOPT_XFERINFOFUNCTION, OnProgress);
    curl_easy_setopt(e, CURLOPT_XFERINFODATA, it);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, OnBody);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, it);
    it->easy = e;
    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, OnHeader);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, it);
    if (it->req.head) curl_easy_setopt(e, CURLOPT_NOBODY, 1L);
    curl_multi_add_handle(multi, e);
    running_easy.insert(e);
    h.active++;
    active++;
    double iv = IntervalOf(h);
    if (iv > 0) h.next_start = now + iv + (h.jitter >= 0 ? h.jitter : opts.interval_jitter_s) * Jitter01();
    std::lock_guard<std::mutex> l(mu);
    stats.requests++;
  }

  // Decides what one finished attempt means: done, or another try later.
  void Finished(CURL* e, CURLcode code) {
    Item* it = nullptr;
    curl_easy_getinfo(e, CURLINFO_PRIVATE, reinterpret_cast<char**>(&it));
    it->easy = nullptr;
    long status = 0;
    curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &status);
    char* eff = nullptr;
    curl_easy_getinfo(e, CURLINFO_EFFECTIVE_URL, &eff);
    long redirects = 0;
    curl_easy_getinfo(e, CURLINFO_REDIRECT_COUNT, &redirects);
    long version = 0;
    curl_easy_getinfo(e, CURLINFO_HTTP_VERSION, &version);
    curl_multi_remove_handle(multi, e);
    running_easy.erase(e);
    idle_easy.push_back(e);
    if (it->hdrs) curl_slist_free_all(it->hdrs);
    it->hdrs = nullptr;
    HostState& h = Host(it->origin);
    h.active--;
    h.completed++;
    active--;

    Response& r = it->resp;
    r.status = static_cast<int>(status);
    r.http_version = version == CURL_HTTP_VERSION_2_0 ? 2 : (version == CURL_HTTP_VERSION_NONE ? 0 : 1);
    if (version == CURL_HTTP_VERSION_2_0) {
      std::lock_guard<std::mutex> l(mu);
      stats.http2++;
    }
    if (eff) r.effective_url = eff;
    r.error.clear();
    r.error_detail.clear();
    bool retry = false;
    double retry_after = -1;
    if (code == CURLE_OK && IsChallenge(static_cast<int>(status), r.headers, r.body)) {
      r.error = "challenge";
      h.challenged = true;
    } else if (code == CURLE_OK) {
      if (status == 429 || status == 503 || status == 500 || status == 502 || status == 504) {
        retry = true;
        retry_after = ParseRetryAfter(r.Header("retry-after"), static_cast<double>(std::time(nullptr)));
      }
    } else {
      r.error_detail = curl_easy_strerror(code);
      switch (code) {
        case CURLE_WRITE_ERROR:
          r.error = it->too_large ? "too_large" : "transport";
          break;
        case CURLE_ABORTED_BY_CALLBACK:
        case CURLE_OPERATION_TIMEDOUT:
          r.error = "timeout";
          retry = true;
          break;
        case CURLE_COULDNT_CONNECT:
        case CURLE_COULDNT_RESOLVE_HOST:
          r.error = "connect";
          retry = true;
          break;
        case CURLE_PARTIAL_FILE:
        case CURLE_GOT_NOTHING:
        case CURLE_RECV_ERROR:
        case CURLE_SEND_ERROR:
        case CURLE_HTTP2:
        case CURLE_HTTP2_STREAM:
          r.error = "truncated";
          retry = true;
          break;
        case CURLE_TOO_MANY_REDIRECTS:
          r.error = "redirect_loop";
          break;
        case CURLE_UNSUPPORTED_PROTOCOL:
          r.error = (redirects > 0 || it->redirected || (status >= 300 && status < 400)) ? "redirect_scheme" : "bad_url";
          break;
        case CURLE_URL_MALFORMAT:
          r.error = "bad_url";
          break;
        default:
          r.error = "transport";
          retry = true;
      }
      // A redirect to a scheme we refuse shows up as a redirect count with the
      // protocol error; libcurl 7.88 reports it as CURLE_UNSUPPORTED_PROTOCOL.
    }
    double now = MonoNow();
    if (retry && r.attempts <= opts.max_retries) {
      double wait;
      if (retry_after >= 0) {
        wait = std::min(retry_after, opts.retry_after_max_s);
        if (retry_after > opts.retry_after_max_s) {
          std::lock_guard<std::mutex> l(mu);
          stats.retry_after_cut_s = std::max(stats.retry_after_cut_s, retry_after);
        }
        // The whole host is asked to wait, not only this request.
        h.next_start = std::max(h.next_start, now + wait);
      } else {
        wait = std::min(opts.backoff_max_s, opts.backoff_base_s * std::pow(2.0, r.attempts - 1)) *
               (0.5 + Jitter01());
      }
      it->not_before = now + wait;
      delayed.push_back(it);
      std::lock_guard<std::mutex> l(mu);
      stats.retries++;
      return;
    }
    Complete(it);
  }

  void Loop() {
    SetThreadName("mf-http");
    while (true) {
      bool stopping;
      {
        std::lock_guard<std::mutex> l(mu);
        stopping = stop;
        for (Item* it : inbox) {
          if (it->req.urgent) {
            Host(it->origin).queue.push_front(it);
          } else {
            Host(it->origin).queue.push_back(it);
          }
        }
        inbox.clear();
        for (auto& [origin, p] : policy_inbox) {
          Host(origin).interval = p.interval;
          Host(origin).max_per = p.max_per;
          Host(origin).jitter = p.jitter;
        }
        policy_inbox.clear();
      }
      if (stopping) break;
      double now = MonoNow();
      double wake = now + 0.25;
      // Retries whose time has come go to the front of their host's queue.
      for (size_t i = 0; i < delayed.size();) {
        Item* it = delayed[i];
        if (it->not_before <= now) {
          Host(it->origin).queue.push_front(it);
          delayed[i] = delayed.back();
          delayed.pop_back();
        } else {
          wake = std::min(wake, it->not_before);
          ++i;
        }
      }
      // Start what the limits allow, round-robin over hosts.
      bool progressed = true;
      while (progressed && active < opts.max_total) {
        progressed = false;
        for (auto& [origin, h] : hosts) {
          if (active >= opts.max_total) break;
          if (h.queue.empty() || h.active >= MaxPerOf(h)) continue;
          if (h.next_start > now) {
            wake = std::min(wake, h.next_start);
            continue;
          }
          Item* it = h.queue.front();
          h.queue.pop_front();
          progressed = true;
          if (h.challenged) {
            it->resp.error = "challenge";
            it->resp.error_detail = "not sent: the site answered an earlier request with a challenge page";
            Complete(it);
            continue;
          }
          Start(it, h, now);
        }
      }
      int running = 0;
      curl_multi_perform(multi, &running);
      int left = 0;
      while (CURLMsg* m = curl_multi_info_read(multi, &left)) {
        if (m->msg == CURLMSG_DONE) Finished(m->easy_handle, m->data.result);
      }
      // Something finished: limits may allow new starts right away.
      bool can_start = false;
      for (auto& [origin, h] : hosts)
        if (!h.queue.empty() && h.active < MaxPerOf(h) && h.next_start <= MonoNow() && active < opts.max_total)
          can_start = true;
      if (can_start) continue;
      int timeout_ms = static_cast<int>(std::max(0.0, (wake - MonoNow()) * 1000.0)) + 1;
      curl_multi_poll(multi, nullptr, 0, std::min(timeout_ms, 250), nullptr);
    }
    // Cancel everything still queued or running.
    std::vector<Item*> all;
    for (auto& [origin, h] : hosts)
      for (Item* it : h.queue) all.push_back(it);
    for (Item* it : delayed) all.push_back(it);
    {
      std::lock_guard<std::mutex> l(mu);
      for (Item* it : inbox) all.push_back(it);
      inbox.clear();
    }
    for (CURL* e : running_easy) {
      Item* it = nullptr;
      curl_easy_getinfo(e, CURLINFO_PRIVATE, reinterpret_cast<char**>(&it));
      curl_multi_remove_handle(multi, e);
      idle_easy.push_back(e);
      if (it) all.push_back(it);
    }
    running_easy.clear();
    for (Item* it : all) {
      if (it->hdrs) curl_slist_free_all(it->hdrs);
      it->hdrs = nullptr;
      it->resp.error = "cancelled";
      Complete(it);
    }
  }
};

Client::Client(ClientOptions opts) : e_(std::make_unique<Engine>(std::move(opts))) {}
Client::~Client() = default;

void Client::SetHostPolicy(const std::string& origin, double min_interval_s, int max_per_host, double jitter_s) {
  {
    std::lock_guard<std::mutex> l(e_->mu);
    e_->policy_inbox[origin] = {min_interval_s, max_per_host, jitter_s};
  }
  curl_multi_wakeup(e_->multi);
}

void Client::Fetch(Request req, std::function<void(Response)> done) {
  auto* it = new Item;
  it->origin = req.budget.empty() ? OriginOf(req.url) : req.budget;
  it->req = std::move(req);
  it->done = std::move(done);
  e_->pending++;
  {
    std::lock_guard<std::mutex> l(e_->mu);
    e_->inbox.push_back(it);
  }
  curl_multi_wakeup(e_->multi);
}

Response Client::Get(Request req) {
  auto p = std::make_shared<std::promise<Response>>();
  auto f = p->get_future();
  Fetch(std::move(req), [p](Response r) { p->set_value(std::move(r)); });
  return f.get();
}

int64_t Client::pending() const { return e_->pending.load(); }

ClientStats Client::stats() const {
  std::lock_guard<std::mutex> l(e_->mu);
  return e_->stats;
}

const std::string& Client::user_agent() const { return e_->ua; }

}  // namespace moeforge::http
