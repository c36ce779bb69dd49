#include "core/http_server.h"

#include <chrono>

#include <httplib.h>

namespace moeforge {

Result<int> BindAndListen(httplib::Server& http, const std::string& host, int port, std::thread* listener) {
  http.set_socket_options([](socket_t sock) {
    int yes = 1;
    setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof yes);
  });
  if (port == 0) {
    port = http.bind_to_any_port(host);
    if (port <= 0) return Status::IoError("cannot bind " + host + " to any port");
  } else if (!http.bind_to_port(host, port)) {
    return Status::IoError("cannot bind " + host + ":" + std::to_string(port) +
                           " (in use, or not an address of this machine)");
  }
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
