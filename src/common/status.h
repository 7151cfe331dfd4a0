// Status and Result<T>: errors as values across module borders.
//
// A Status is either OK or carries an error code and a message that names the
// file or field at fault and the reason ("16_STOimage_1.ser: element 3 offset
// 9123456 is past the end of the file (2101248 bytes)"). Result<T> holds a T
// or a non-OK Status. Both are plain values: copyable, movable, thread-compatible.
#pragma once

#include <cassert>
#include <string>
#include <utility>
#include <variant>

namespace scisearch {

enum class ErrorCode {
  kOk = 0,
  kInvalidArgument,  // the caller asked for something that makes no sense
  kNotFound,         // a file, signal or record does not exist
  kUnsupported,      // a valid input that this version cannot read
  kCorrupt,          // the input contradicts its own format (truncated, bad offsets, ...)
  kIoError,          // the operating system refused a read or write
  kInternal,         // a bug or a library failure with no better description
};

class [[nodiscard]] Status {
 public:
  // An OK status.
  Status() = default;

  static Status Ok() { return Status(); }
  static Status Error(ErrorCode code, std::string message) {
    assert(code != ErrorCode::kOk);
    return Status(code, std::move(message));
  }
  static Status InvalidArgument(std::string m) {
    return Error(ErrorCode::kInvalidArgument, std::move(m));
  }
  static Status NotFound(std::string m) { return Error(ErrorCode::kNotFound, std::move(m)); }
  static Status Unsupported(std::string m) { return Error(ErrorCode::kUnsupported, std::move(m)); }
  static Status Corrupt(std::string m) { return Error(ErrorCode::kCorrupt, std::move(m)); }
  static Status IoError(std::string m) { return Error(ErrorCode::kIoError, std::move(m)); }
  static Status Internal(std::string m) { return Error(ErrorCode::kInternal, std::move(m)); }

  bool ok() const { return code_ == ErrorCode::kOk; }
  ErrorCode code() const { return code_; }
  // The human-readable reason; empty when ok().
  const std::string& message() const { return message_; }

  // Returns a copy whose message is "context: message" (for adding the path or field
  // name as an error travels outwards). OK statuses are returned unchanged.
  Status WithContext(const std::string& context) const {
    if (ok()) return *this;
    return Status(code_, context + ": " + message_);
  }

 private:
  Status(ErrorCode code, std::string message) : code_(code), message_(std::move(message)) {}

  ErrorCode code_ = ErrorCode::kOk;
  std::string message_;
};

// Holds either a value or an error Status (never an OK Status).
template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : state_(std::move(value)) {}        // NOLINT: implicit by design
  Result(Status status) : state_(std::move(status)) {  // NOLINT: implicit by design
    assert(!std::get<Status>(state_).ok());
  }

  bool ok() const { return std::holds_alternative<T>(state_); }
  // The error; Status::Ok() when a value is held.
  Status status() const { return ok() ? Status::Ok() : std::get<Status>(state_); }

  // Requires ok().
  T& value() & { return std::get<T>(state_); }
  const T& value() const& { return std::get<T>(state_); }
  T&& value() && { return std::get<T>(std::move(state_)); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }

 private:
  std::variant<T, Status> state_;
};

}  // namespace scisearch

// Returns from the enclosing function when `expr` (a Status) is not OK.
#define SCISEARCH_RETURN_IF_ERROR(expr) \
  do {                                  \
    ::scisearch::Status _st = (expr);   \
    if (!_st.ok()) return _st;          \
  } while (0)

#define SCISEARCH_CONCAT_INNER(a, b) a##b
#define SCISEARCH_CONCAT(a, b) SCISEARCH_CONCAT_INNER(a, b)
// Declares `lhs` from a Result expression, or returns its Status from the enclosing function.
#define SCISEARCH_ASSIGN_OR_RETURN(lhs, expr) \
  SCISEARCH_ASSIGN_OR_RETURN_IMPL(SCISEARCH_CONCAT(_result_, __LINE__), lhs, expr)
#define SCISEARCH_ASSIGN_OR_RETURN_IMPL(tmp, lhs, expr) \
  auto tmp = (expr);                                    \
  if (!tmp.ok()) return tmp.status();                   \
  lhs = std::move(tmp).value()
