// Requests to the demo booru as a stranger could send them: the input is written raw to a
// loopback demo booru (HTTP parsing, routing, the three dialects' query parameters, tag
// searches, ids, pages), and its tag-search parser is also fed the input directly. A crash
// in a server thread takes the process down, so the fuzzer sees it. The server keeps 12
// posts with no faults: a fault would make it stall on purpose.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <memory>
#include <string>

#include "demo_booru/server.h"
#include "demo_booru/server_internal.h"

using namespace moeforge::demo;

namespace {

int Port() {
  static std::unique_ptr<DemoBooru> booru = [] {
    DemoBooru::Options o;
    o.posts = 12;
    o.seed = 3;
    o.threads = 2;
    auto b = std::make_unique<DemoBooru>(o);
    if (!b->Start().ok()) std::abort();
    return b;
  }();
  return booru->port();
}

// Sends `bytes`, half-closes, reads the answer until the server closes or 2 s of silence.
void Exchange(const std::string& bytes) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(Port()));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    ::close(fd);
    return;
  }
  size_t off = 0;
  while (off < bytes.size()) {
    ssize_t n = ::send(fd, bytes.data() + off, bytes.size() - off, MSG_NOSIGNAL);
    if (n <= 0) break;
    off += static_cast<size_t>(n);
  }
  ::shutdown(fd, SHUT_WR);
  char buf[65536];
  pollfd p{fd, POLLIN, 0};
  while (::poll(&p, 1, 2000) > 0) {
    if (::recv(fd, buf, sizeof buf, 0) <= 0) break;
  }
  ::close(fd);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string text(reinterpret_cast<const char*>(data), size);
  // The query string's tag search, as each dialect's handler parses it.
  for (auto d : {internal::Dialect::kDanbooru, internal::Dialect::kMoebooru, internal::Dialect::kGelbooru}) {
    auto q = internal::ParseTagQuery(text, d);
    if (q.ok()) {
      PostMeta meta;
      meta.id = 7;
      volatile bool m = internal::Matches(*q, meta);
      (void)m;
    }
  }
  Exchange(text);
  return 0;
}
