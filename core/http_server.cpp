#include "core/http_server.h"

#include <chrono>
#include <memory>

#include <httplib.h>

namespace moeforge {

Result<int> BindAndListen(httplib::Server& http, const std::string& host, int port, std::thread* listener) {
  auto sock_fd = std::make_shared<socket_t>(INVALID_SOCKET);
  http.set_socket_options([sock_fd](socket_t sock) {
    int yes = 1;
    setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof yes);
    *sock_fd = sock;  // the last candidate address tried is the one bound
  });
  if (port == 0) {
    port = http.bind_to_any_port(host);
    if (port <= 0) return Status::IoError("cannot bind " + host + " to any port");
  } else if (!http.bind_to_port(host, port)) {
    return Status::IoError("cannot bind " + host + ":" + std::to_string(port) +
                           " (in use, or not an address of this machine)");
  }
  // httplib (as Debian builds it) listens with a backlog of 5: sixteen clients connecting
  // at once overflow it, the kernel drops their SYNs and each one waits out the 1 s SYN
  // retransmit. A second listen() on the bound socket raises the backlog.
  if (*sock_fd != INVALID_SOCKET) ::listen(*sock_fd, SOMAXCONN);
  *listener = std::thread([&http] { http.listen_after_bind(); });
  // The socket accepts already; wait until the accept loop runs too.
  for (int i = 0; i < 500 && !http.is_running(); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(2));
  return port;
}

std::string HttpBaseUrl(const std::string& host, int port) {
  std::string h = host.find(':') != std::string::npos ? "[" + host + "]" : host;
  return "http://" + h + ":" + std::to_string(port);
}

}  // namespace moeforge
