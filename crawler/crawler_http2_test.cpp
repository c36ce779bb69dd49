// The HTTP client over TLS against a real HTTP/2 server: nghttpd (Debian's nghttp2-server)
// on loopback with a self-signed certificate made by the openssl tool. Checks that ALPN
// negotiates HTTP/2, that concurrent transfers to one host all come back whole over it,
// and that the certificate is really verified (without --ca-file the fetch fails).
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <random>
#include <thread>

#include <gtest/gtest.h>

#include "core/http.h"

namespace moeforge::crawler {
namespace {

namespace fs = std::filesystem;

bool HaveTool(const std::string& name) { return std::system(("command -v " + name + " >/dev/null 2>&1").c_str()) == 0; }

int FreePort() {
  int s = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (bind(s, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) return close(s), -1;
  socklen_t len = sizeof a;
  getsockname(s, reinterpret_cast<sockaddr*>(&a), &len);
  close(s);
  return ntohs(a.sin_port);
}

bool Accepts(int port) {
  int s = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bool ok = connect(s, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
  close(s);
  return ok;
}

// nghttpd serving `docs` over TLS on a free loopback port, stopped on destruction.
class Nghttpd {
 public:
  Nghttpd(const std::string& docs, const std::string& key, const std::string& cert) {
    port_ = FreePort();
    pid_ = fork();
    if (pid_ == 0) {
      std::freopen("/dev/null", "w", stdout);
      std::freopen("/dev/null", "w", stderr);
      std::string p = std::to_string(port_);
      execlp("nghttpd", "nghttpd", "-a", "127.0.0.1", "-d", docs.c_str(), p.c_str(), key.c_str(), cert.c_str(),
             static_cast<char*>(nullptr));
      _exit(127);
    }
    for (int i = 0; i < 100 && !Accepts(port_); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  ~Nghttpd() {
    if (pid_ > 0) {
      kill(pid_, SIGTERM);
      waitpid(pid_, nullptr, 0);
    }
  }
  bool up() const { return pid_ > 0 && Accepts(port_); }
  std::string base() const { return "https://127.0.0.1:" + std::to_string(port_); }

 private:
  int port_ = -1;
  pid_t pid_ = -1;
};

TEST(HttpClientTls, NegotiatesHttp2AndVerifiesTheCertificate) {
  if (!HaveTool("nghttpd") || !HaveTool("openssl"))
    GTEST_SKIP() << "needs nghttpd (Debian: nghttp2-server) and openssl; scripts/debian-packages.txt installs both";
  std::string dir = (fs::temp_directory_path() / ("moeforge-h2-" + std::to_string(getpid()))).string();
  fs::remove_all(dir);
  fs::create_directories(dir + "/docs");
  std::string key = dir + "/key.pem", cert = dir + "/cert.pem";
  std::string make_cert = "openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=127.0.0.1 "
                          "-addext subjectAltName=IP:127.0.0.1 -keyout " + key + " -out " + cert + " >/dev/null 2>&1";
  ASSERT_EQ(std::system(make_cert.c_str()), 0) << make_cert;

  // Twelve files of random bytes, 10-60 KB.
  std::mt19937_64 rng(3);
  std::vector<std::string> bodies;
  for (int i = 0; i < 12; ++i) {
    std::string b(10000 + rng() % 50000, '\0');
    for (auto& ch : b) ch = static_cast<char>(rng());
    std::ofstream(dir + "/docs/f" + std::to_string(i) + ".bin", std::ios::binary) << b;
    bodies.push_back(std::move(b));
  }
  Nghttpd server(dir + "/docs", key, cert);
  ASSERT_TRUE(server.up()) << "nghttpd did not start";

  {
    http::ClientOptions co;
    co.ca_file = cert;
    co.max_per_host = 4;
    http::Client c(co);
    std::mutex mu;
    std::condition_variable cv;
    std::vector<http::Response> got(bodies.size());
    size_t done = 0;
    for (size_t i = 0; i < bodies.size(); ++i) {
      http::Request rq;
      rq.url = server.base() + "/f" + std::to_string(i) + ".bin";
      c.Fetch(rq, [&, i](http::Response r) {
        std::lock_guard<std::mutex> l(mu);
        got[i] = std::move(r);
        ++done;
        cv.notify_all();
      });
    }
    std::unique_lock<std::mutex> l(mu);
    ASSERT_TRUE(cv.wait_for(l, std::chrono::seconds(60), [&] { return done == bodies.size(); }));
    for (size_t i = 0; i < bodies.size(); ++i) {
      SCOPED_TRACE("f" + std::to_string(i));
      EXPECT_TRUE(got[i].ok()) << got[i].Reason() << " " << got[i].error_detail;
      EXPECT_EQ(got[i].http_version, 2);
      EXPECT_TRUE(got[i].body == bodies[i]) << got[i].body.size() << " bytes, want " << bodies[i].size();
    }
    EXPECT_EQ(c.stats().http2, static_cast<int64_t>(bodies.size()));
  }
  {
    // The same server without trusting its certificate: refused, no body.
    http::ClientOptions co;
    co.max_retries = 0;
    http::Client c(co);
    http::Request rq;
    rq.url = server.base() + "/f0.bin";
    auto r = c.Get(rq);
    EXPECT_FALSE(r.ok());
    EXPECT_FALSE(r.error.empty());
    EXPECT_TRUE(r.body.empty());
  }
  fs::remove_all(dir);
}

}  // namespace
}  // namespace moeforge::crawler
