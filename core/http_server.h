// What moeforge's two HTTP servers (the demo booru and `serve`) share: binding a
// cpp-httplib server and starting its accept loop, and the base URL they announce.
#pragma once

#include <string>
#include <thread>

#include "core/status.h"

namespace httplib {
class Server;
}

namespace moeforge {

// Binds `http` to host:port (port 0: any free port) with SO_REUSEADDR only (httplib's
// default also sets SO_REUSEPORT, which would let a second server share a taken port),
// starts the accept loop on *listener and waits until it runs. Returns the port.
Result<int> BindAndListen(httplib::Server& http, const std::string& host, int port, std::thread* listener);

// "http://HOST:PORT" ("[::1]" style for IPv6 hosts).
std::string HttpBaseUrl(const std::string& host, int port);

}  // namespace moeforge
