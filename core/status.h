// Errors as values (leveldb style): every fallible call across a module edge returns a
// Status or a Result<T>. The code decides the process exit status (DESIGN.md: 0 done,
// 1 failed, 2 bad usage or input).
#pragma once

#include <optional>
#include <string>
#include <utility>
#include <variant>

namespace moeforge {

class Status {
 public:
  enum class Code {
    kOk = 0,
    kInvalidArgument,  // bad usage or input the user can fix: exit 2
    kNotFound,         // a named file, model, run or view does not exist: exit 2
    kIoError,          // filesystem or database failure: exit 1
    kNetwork,          // transport failure, HTTP error: exit 1
    kCorrupt,          // data that does not parse or decode: exit 1
    kUnsupported,      // a format or model this build cannot handle: exit 1
    kInternal,         // a bug: exit 1
  };

  Status() = default;
  static Status Ok() { return Status(); }
  static Status InvalidArgument(std::string m) { return Status(Code::kInvalidArgument, std::move(m)); }
  static Status NotFound(std::string m) { return Status(Code::kNotFound, std::move(m)); }
  static Status IoError(std::string m) { return Status(Code::kIoError, std::move(m)); }
  static Status Network(std::string m) { return Status(Code::kNetwork, std::move(m)); }
  static Status Corrupt(std::string m) { return Status(Code::kCorrupt, std::move(m)); }
  static Status Unsupported(std::string m) { return Status(Code::kUnsupported, std::move(m)); }
  static Status Internal(std::string m) { return Status(Code::kInternal, std::move(m)); }

  bool ok() const { return code_ == Code::kOk; }
  Code code() const { return code_; }
  const std::string& message() const { return message_; }
  // "not found: model 'x' ..." style, for logs and the one-line error a user sees.
  std::string ToString() const;
  // 0 for ok, 2 for usage/input problems, 1 for everything else.
  int ExitCode() const;
  // Prefix the message with context: "reading config.toml: <message>".
  Status WithContext(const std::string& context) const;

 private:
  Status(Code c, std::string m) : code_(c), message_(std::move(m)) {}
  Code code_ = Code::kOk;
  std::string message_;
};

// A value or the Status saying why there is none.
template <typename T>
class Result {
 public:
  Result(T value) : value_(std::move(value)) {}          // NOLINT: implicit on purpose
  Result(Status status) : status_(std::move(status)) {}  // NOLINT: implicit on purpose
  bool ok() const { return value_.has_value(); }
  const Status& status() const { return status_; }
  T& value() & { return *value_; }
  const T& value() const& { return *value_; }
  T&& value() && { return std::move(*value_); }
  T* operator->() { return &*value_; }
  const T* operator->() const { return &*value_; }
  T& operator*() { return *value_; }
  const T& operator*() const { return *value_; }

 private:
  std::optional<T> value_;
  Status status_;
};

}  // namespace moeforge

#define MF_RETURN_IF_ERROR(expr)             \
  do {                                       \
    ::moeforge::Status _mf_s = (expr);       \
    if (!_mf_s.ok()) return _mf_s;           \
  } while (0)

#define MF_CONCAT_INNER(a, b) a##b
#define MF_CONCAT(a, b) MF_CONCAT_INNER(a, b)
#define MF_ASSIGN_OR_RETURN(lhs, expr) MF_ASSIGN_OR_RETURN_IMPL(MF_CONCAT(_mf_r_, __LINE__), lhs, expr)
#define MF_ASSIGN_OR_RETURN_IMPL(tmp, lhs, expr) \
  auto tmp = (expr);                             \
  if (!tmp.ok()) return tmp.status();            \
  lhs = std::move(tmp).value()
