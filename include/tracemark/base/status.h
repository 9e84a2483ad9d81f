// Status and Result<T>: errors as values at module boundaries.
//
// A Status is either OK or carries a code and a one-line message a user can act on
// ("gguf: tensor 'blk.0.attn_q.weight' data [offset 123, 4096 bytes] runs past end of file (2048
// bytes); the file is truncated or corrupt"). Expected failures (bad input, I/O, limits) return a
// Status; assertions are reserved for programmer errors and are never reachable from input.
// Both types are values: cheap to move, safe to use from any thread, not synchronized.
#pragma once

#include <cassert>
#include <string>
#include <string_view>
#include <utility>
#include <variant>

namespace tracemark {

enum class StatusCode {
  kOk = 0,
  kInvalidArgument,   // bad input: malformed file, wrong type, value out of range (exit code 2)
  kNotFound,          // a named thing does not exist
  kIoError,           // the OS refused: open, read, write, mmap
  kResourceExhausted, // a documented limit was hit
  kUnimplemented,     // valid input that this build does not support (e.g. an unknown tensor type)
  kPermissionDenied,  // e.g. a keyring readable by others
  kInternal,          // a bug: an invariant failed
};

class [[nodiscard]] Status {
 public:
  Status() = default;
  Status(StatusCode code, std::string message) : code_(code), message_(std::move(message)) {}

  static Status Ok() { return {}; }
  bool ok() const { return code_ == StatusCode::kOk; }
  StatusCode code() const { return code_; }
  const std::string& message() const { return message_; }
  // "invalid argument: <message>" style text for logs and CLI errors.
  std::string ToString() const;

  // Returns a copy whose message is "<context>: <message>".
  Status WithContext(std::string_view context) const;

 private:
  StatusCode code_ = StatusCode::kOk;
  std::string message_;
};

inline Status InvalidArgument(std::string msg) { return {StatusCode::kInvalidArgument, std::move(msg)}; }
inline Status NotFound(std::string msg) { return {StatusCode::kNotFound, std::move(msg)}; }
inline Status IoError(std::string msg) { return {StatusCode::kIoError, std::move(msg)}; }
inline Status ResourceExhausted(std::string msg) { return {StatusCode::kResourceExhausted, std::move(msg)}; }
inline Status Unimplemented(std::string msg) { return {StatusCode::kUnimplemented, std::move(msg)}; }
inline Status PermissionDenied(std::string msg) { return {StatusCode::kPermissionDenied, std::move(msg)}; }
inline Status Internal(std::string msg) { return {StatusCode::kInternal, std::move(msg)}; }

// Result<T> holds either a T or a non-OK Status.
template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::move(value)) {}  // NOLINT(google-explicit-constructor)
  Result(Status status) : v_(std::move(status)) {  // NOLINT(google-explicit-constructor)
    assert(!std::get<Status>(v_).ok() && "Result constructed from an OK status");
  }

  bool ok() const { return std::holds_alternative<T>(v_); }
  const Status& status() const {
    static const Status kOkStatus;
    return ok() ? kOkStatus : std::get<Status>(v_);
  }
  T& value() & { assert(ok()); return std::get<T>(v_); }
  const T& value() const& { assert(ok()); return std::get<T>(v_); }
  T&& value() && { assert(ok()); return std::get<T>(std::move(v_)); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }

 private:
  std::variant<T, Status> v_;
};

}  // namespace tracemark

// Propagate a non-OK Status from an expression returning Status.
#define TM_RETURN_IF_ERROR(expr)                 \
  do {                                           \
    ::tracemark::Status tm_status_ = (expr);     \
    if (!tm_status_.ok()) return tm_status_;     \
  } while (0)

#define TM_CONCAT_INNER_(a, b) a##b
#define TM_CONCAT_(a, b) TM_CONCAT_INNER_(a, b)
// TM_ASSIGN_OR_RETURN(auto x, FunctionReturningResult());
#define TM_ASSIGN_OR_RETURN(lhs, expr) TM_ASSIGN_OR_RETURN_IMPL_(TM_CONCAT_(tm_result_, __LINE__), lhs, expr)
#define TM_ASSIGN_OR_RETURN_IMPL_(tmp, lhs, expr) \
  auto tmp = (expr);                              \
  if (!tmp.ok()) return tmp.status();             \
  lhs = std::move(tmp).value()
