#include "demo_booru/faults.h"
#include "core/strings.h"

#include "demo_booru/render.h"

#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <sstream>

namespace moeforge::demo {
namespace {

constexpr const char* kNames[kFaultCount] = {
    "none",    "rate429", "5xx",   "5xx_perm",      "stall",           "truncate",
    "corrupt", "ctype",   "redirect_loop", "redirect_scheme", "oversize", "huge_dims", "noai",
};

constexpr const char* kReasons[kFaultCount] = {
    "",        "",             "",              "http_500",        "timeout",   "truncated",
    "corrupt", "content_type", "redirect_loop", "redirect_scheme", "too_large", "huge_dims", "noai",
};

uint64_t Mix(uint64_t x) {  // splitmix64's finaliser
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

bool ParseNumber(const std::string& s, double* out) {
  if (s.empty()) return false;
  char* end = nullptr;
  errno = 0;
  double v = std::strtod(s.c_str(), &end);
  if (errno != 0 || end != s.c_str() + s.size() || !std::isfinite(v)) return false;
  *out = v;
  return true;
}

}  // namespace

const char* FaultName(Fault f) {
  int i = static_cast<int>(f);
  return (i >= 0 && i < kFaultCount) ? kNames[i] : "unknown";
}

bool FaultSpec::empty() const {
  for (int i = 1; i < kFaultCount; ++i)
    if (rate[i] > 0) return false;
  return api429 <= 0;
}

std::string FaultSpec::ToString() const {
  std::ostringstream o;
  const char* sep = "";
  for (int i = 1; i < kFaultCount; ++i) {
    if (rate[i] <= 0) continue;
    o << sep << kNames[i] << "=" << rate[i];
    sep = ",";
  }
  if (api429 > 0) o << sep << "api429=" << api429, sep = ",";
  FaultSpec d;
  if (fail_first != d.fail_first) o << sep << "fail_first=" << fail_first, sep = ",";
  if (retry_after_s != d.retry_after_s) o << sep << "retry_after=" << retry_after_s, sep = ",";
  if (stall_ms != d.stall_ms) o << sep << "stall_ms=" << stall_ms, sep = ",";
  if (oversize_bytes != d.oversize_bytes) o << sep << "oversize_mb=" << (oversize_bytes >> 20), sep = ",";
  return o.str();
}

Result<FaultSpec> ParseFaultSpec(const std::string& spec) {
  FaultSpec out;
  std::stringstream ss(spec);
  std::string item;
  while (std::getline(ss, item, ',')) {
    item = Trim(item);
    if (item.empty()) continue;
    size_t eq = item.find('=');
    if (eq == std::string::npos)
      return Status::InvalidArgument("fault spec item '" + item + "' is not name=value");
    std::string name = Trim(item.substr(0, eq));
    double v = 0;
    if (!ParseNumber(Trim(item.substr(eq + 1)), &v))
      return Status::InvalidArgument("fault spec item '" + item + "': value is not a number");
    bool known = false;
    for (int i = 1; i < kFaultCount; ++i) {
      if (name != kNames[i]) continue;
      if (v < 0 || v > 1)
        return Status::InvalidArgument("fault spec item '" + item + "': a rate must lie in [0, 1]");
      out.rate[i] = v;
      known = true;
    }
    if (name == "api429") {
      if (v < 0 || v > 1)
        return Status::InvalidArgument("fault spec item '" + item + "': a rate must lie in [0, 1]");
      out.api429 = v;
      known = true;
    }
    if (known) continue;
    auto whole = [&](double lo, double hi) -> Status {
      if (v != std::floor(v) || v < lo || v > hi)
        return Status::InvalidArgument("fault spec item '" + item + "': expected a whole number in [" +
                                       std::to_string(static_cast<int64_t>(lo)) + ", " +
                                       std::to_string(static_cast<int64_t>(hi)) + "]");
      return Status::Ok();
    };
    if (name == "fail_first") {
      MF_RETURN_IF_ERROR(whole(0, 100));
      out.fail_first = static_cast<int>(v);
    } else if (name == "retry_after") {
      MF_RETURN_IF_ERROR(whole(0, 3600));
      out.retry_after_s = static_cast<int>(v);
    } else if (name == "stall_ms") {
      MF_RETURN_IF_ERROR(whole(1, 3600 * 1000));
      out.stall_ms = static_cast<int>(v);
    } else if (name == "oversize_mb") {
      MF_RETURN_IF_ERROR(whole(1, 4096));
      out.oversize_bytes = static_cast<int64_t>(v) << 20;
    } else {
      std::string known_names;
      for (int i = 1; i < kFaultCount; ++i) known_names += std::string(kNames[i]) + " ";
      known_names += "api429";
      return Status::InvalidArgument("unknown fault '" + name + "' (faults: " + known_names +
                                     "; parameters: fail_first retry_after stall_ms oversize_mb)");
    }
  }
  return out;
}

uint64_t HashFor(uint64_t seed, int64_t post_id, const std::string& name) {
  uint64_t h = 0xcbf29ce484222325ull;  // FNV-1a of the name
  for (unsigned char c : name) h = (h ^ c) * 0x100000001b3ull;
  return Mix(Mix(Mix(seed) ^ static_cast<uint64_t>(post_id)) ^ h);
}

double UniformFor(uint64_t seed, int64_t post_id, const std::string& name) {
  return static_cast<double>(HashFor(seed, post_id, name) >> 11) * (1.0 / 9007199254740992.0);
}

FaultVerdict FaultFor(uint64_t seed, int64_t post_id, const FaultSpec& spec) {
  FaultVerdict v;
  if (spec.empty()) return v;
  // An exact duplicate has its original's bytes, md5 and so file URL: one URL, one fault.
  int64_t key = post_id;
  PostPlan plan = PlanPost(seed, post_id);
  if (plan.kind == PostKind::kDuplicate && plan.duplicate_how == DuplicateHow::kExact) key = plan.duplicate_of;
  for (int i = 1; i < kFaultCount; ++i) {
    if (spec.rate[i] <= 0) continue;
    if (UniformFor(seed, key, std::string("fault:") + kNames[i]) < spec.rate[i]) {
      v.fault = static_cast<Fault>(i);
      v.reason = kReasons[i];
      v.stored = v.reason.empty();
      break;
    }
  }
  return v;
}

bool ApiRateLimited(uint64_t seed, const std::string& target, const FaultSpec& spec) {
  return spec.api429 > 0 && UniformFor(seed, 0, "api429:" + target) < spec.api429;
}

Result<FaultVerdict> FaultFor(uint64_t seed, int64_t post_id, const std::string& spec) {
  MF_ASSIGN_OR_RETURN(FaultSpec parsed, ParseFaultSpec(spec));
  return FaultFor(seed, post_id, parsed);
}

}  // namespace moeforge::demo
