// robots.txt as RobotsRules parses it, then asked about paths taken from the input itself
// (its lines), so patterns with '*' and '$' meet paths that resemble them.
#include <cstdint>
#include <sstream>
#include <string>

#include "crawler/robots.h"

using namespace moeforge::crawler;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string body(reinterpret_cast<const char*>(data), size);
  RobotsRules rules = RobotsRules::Parse(body, "moeforge");
  volatile bool any = rules.Allowed("/") ^ rules.Allowed("/posts.json?tags=1girl&page=2");
  std::istringstream lines(body);
  std::string line;
  int n = 0;
  while (std::getline(lines, line) && n++ < 64) {
    auto colon = line.find(':');
    any = any ^ rules.Allowed(colon == std::string::npos ? line : line.substr(colon + 1));
  }
  for (int status : {200, 404, 503, 0}) any = any ^ RobotsRules::FromFetch(status, body, "MoeForge").Allowed("/x");
  (void)any;
  return 0;
}
