// The one config loader: a TOML file as Config::Parse reads it, its keys listed, an
// override applied, and values bound by type as the stages bind theirs. The input's last
// line doubles as a command-line override ("a.b=value").
#include <cstdint>
#include <string>
#include <vector>

#include "core/config.h"

using namespace moeforge;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string text(reinterpret_cast<const char*>(data), size);
  auto cfg = Config::Parse(text, "fuzz.toml");
  if (!cfg.ok()) return 0;
  auto keys = cfg->Keys();
  auto nl = text.find_last_of('\n');
  (void)cfg->ApplyOverride(nl == std::string::npos ? text : text.substr(nl + 1));
  (void)cfg->Has("crawl.limit");
  ConfigBinder b(*cfg);
  // Each key is bound with a type picked from its name, so every type meets every value.
  std::string s;
  int i = 0;
  int64_t i64 = 0;
  uint64_t u64 = 0;
  double d = 0;
  bool flag = false;
  std::vector<int> list;
  for (size_t k = 0; k < keys.size() && k < 256; ++k) {
    switch (std::hash<std::string>{}(keys[k]) % 7) {
      case 0: b.Bind(keys[k], &s); break;
      case 1: b.Bind(keys[k], &i); break;
      case 2: b.Bind(keys[k], &i64); break;
      case 3: b.Bind(keys[k], &u64); break;
      case 4: b.Bind(keys[k], &d); break;
      case 5: b.Bind(keys[k], &flag); break;
      default: b.Bind(keys[k], &list); break;
    }
  }
  b.Bind("train.steps", &i);
  b.Bind("crawl.url", &s);
  b.Allow("sample");
  (void)b.Finish();
  return 0;
}
