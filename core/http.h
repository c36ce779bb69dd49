// The project's one HTTP client (the crawler and `moeforge models pull` share it), on
// libcurl's multi interface: one engine thread drives every transfer, reusing
// connections (HTTP/2 multiplexing where the server offers it), with a global and a
// per-host concurrency limit, a per-host minimum interval between request starts,
// connect and low-speed timeouts, retries with exponential backoff and jitter, 429/503
// honoured through Retry-After (clamped), http/https only (redirects too), a redirect
// limit, and a byte limit enforced while the body streams in.
//
// Completion callbacks run on the engine thread: keep them short (hand heavy work to
// a pool). Every request completes exactly once, also when the client is destroyed.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/status.h"

namespace moeforge::http {

struct ClientOptions {
  // Sent as User-Agent. Empty: "moeforge/<version> (+contact)" from `contact`.
  std::string user_agent;
  std::string contact;  // an e-mail or URL the site can reach the user at
  int max_total = 16;          // transfers in flight, all hosts together
  int max_per_host = 4;        // transfers in flight to one host (scheme://host:port)
  double min_interval_s = 0;   // between request starts to one host (0: none)
  double interval_jitter_s = 0;  // added uniformly at random to min_interval_s
  long connect_timeout_s = 10;
  double stall_timeout_s = 20; // abort (reason timeout) when no byte arrives for this long
  long low_speed_bytes = 512;  // also abort when slower than this many bytes/s ...
  long low_speed_time_s = 60;  // ... for this many seconds (libcurl's average)
  long total_timeout_s = 300;
  int max_retries = 3;         // extra attempts after the first
  double backoff_base_s = 0.5; // attempt k waits base * 2^(k-1) * U[0.5, 1.5), capped
  double backoff_max_s = 30;
  double retry_after_max_s = 60;  // a server's Retry-After is clamped to this
  int max_redirects = 5;
  // Extra PEM file of CA certificates to trust for https (a private mirror, a proxy's own
  // CA); empty: the system's store.
  std::string ca_file;
};

struct Request {
  std::string url;
  int64_t max_bytes = 0;         // 0: unlimited; larger bodies fail with reason too_large
  std::vector<std::string> headers;  // "Name: value"
  std::string if_none_match;     // ETag for a conditional GET
  std::string if_modified_since; // Last-Modified for a conditional GET
  bool head = false;             // HEAD instead of GET
  bool urgent = false;           // goes ahead of its host's queue (API pages before images)
  // The origin whose pacing, concurrency and queue this request shares ("" its own): a
  // site's file hosts share its API's budget.
  std::string budget;
};

struct Response {
  bool ok() const { return error.empty() && status >= 200 && status < 300; }
  int status = 0;                // last HTTP status (0 when none arrived)
  std::string body;
  std::map<std::string, std::string> headers;  // lower-case names, last value wins
  std::string effective_url;     // after redirects
  // Empty when an HTTP response arrived. Otherwise a short machine-readable reason:
  // too_large, timeout, connect, truncated, redirect_scheme (a redirect to a scheme other
  // than http/https), redirect_loop, bad_url,
  // transport, cancelled, challenge (a Cloudflare-style browser check, 403/503: never
  // retried, and every later request to the same budget fails with it unsent).
  std::string error;
  std::string error_detail;      // libcurl's message, for logs
  int attempts = 0;
  int http_version = 0;          // 1 (HTTP/1.x) or 2 (negotiated by ALPN on https); 0: none
  double seconds = 0;            // from first start to completion, retries included
  std::string Header(const std::string& lower_name) const;
  // "http_404", or `error` when there was no HTTP answer.
  std::string Reason() const;
};

struct ClientStats {
  int64_t requests = 0;   // attempts started
  int64_t retries = 0;
  int64_t bytes = 0;      // body bytes received
  int64_t completed = 0;
  int64_t http2 = 0;      // attempts answered over HTTP/2
  double retry_after_cut_s = 0;  // the longest Retry-After cut to retry_after_max_s (0: none)
};

class Client {
 public:
  explicit Client(ClientOptions opts = {});
  ~Client();  // cancels what is still queued (callbacks get error "cancelled")
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  // Overrides min_interval_s / max_per_host (and interval_jitter_s, when >= 0) for one
  // origin ("http://host:port") or budget (Request::budget).
  void SetHostPolicy(const std::string& origin, double min_interval_s, int max_per_host, double jitter_s = -1);
  // Queues a request; `done` runs once on the engine thread.
  void Fetch(Request req, std::function<void(Response)> done);
  // Blocking convenience.
  Response Get(Request req);
  // Requests queued or in flight.
  int64_t pending() const;
  ClientStats stats() const;
  const std::string& user_agent() const;

 private:
  struct Engine;
  std::unique_ptr<Engine> e_;
};

// "moeforge/0.1.0 (+CONTACT)"; without a contact, a pointer to the project.
std::string DefaultUserAgent(const std::string& contact);
// "http://host:port" (port always explicit), lower-case; empty for a malformed URL.
std::string OriginOf(const std::string& url);
std::string HostOf(const std::string& url);
// The path and query of a URL ("/a/b?c"), "/" when empty.
std::string PathAndQuery(const std::string& url);
// Resolves `ref` (absolute, scheme-relative, absolute-path or relative) against `base`.
std::string ResolveUrl(const std::string& base, const std::string& ref);
bool IsLoopbackHost(const std::string& host);
// Percent-encodes a query value.
std::string UrlEncode(const std::string& s);
// Whether a 403/503 answer is a bot challenge page (cf-mitigated: challenge, or Cloudflare's
// "Just a moment..." / challenge-platform markers) rather than the site's own refusal.
bool IsChallenge(int status, const std::map<std::string, std::string>& headers, const std::string& body);
// Retry-After: delta seconds or an HTTP-date; negative when absent or unreadable.
double ParseRetryAfter(const std::string& value, double now_unix);

}  // namespace moeforge::http
