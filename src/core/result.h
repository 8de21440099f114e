// Result<T>: the return type of every function that handles untrusted input.
// An Error carries a message that names the thing and the value, e.g.
//   "gguf: tensor blk.3.attn_q: data offset 812 beyond file size 640".
#pragma once

#include <cstdlib>
#include <string>
#include <type_traits>
#include <utility>
#include <variant>

#include <fmt/format.h>

namespace owl::core {

struct Error {
  std::string message;
};

// Builds an Error from a fmt format string.
template <typename... Args>
Error make_error(fmt::format_string<Args...> format, Args&&... args) {
  return Error{fmt::format(format, std::forward<Args>(args)...)};
}

template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : state_(std::in_place_index<0>, std::move(value)) {}  // NOLINT: implicit by design
  Result(Error error) : state_(std::in_place_index<1>, std::move(error)) {}  // NOLINT

  bool ok() const { return state_.index() == 0; }
  explicit operator bool() const { return ok(); }

  T& value() & { return checked(); }
  const T& value() const& { return const_cast<Result*>(this)->checked(); }
  T&& value() && { return std::move(checked()); }
  T& operator*() & { return checked(); }
  const T& operator*() const& { return value(); }
  T* operator->() { return &checked(); }
  const T* operator->() const { return &value(); }

  const Error& error() const { return std::get<1>(state_); }
  const std::string& message() const { return error().message; }

 private:
  T& checked() {
    if (state_.index() != 0) {
      fmt::print(stderr, "owl: fatal: value() of a failed Result: {}\n", std::get<1>(state_).message);
      std::abort();
    }
    return std::get<0>(state_);
  }
  std::variant<T, Error> state_;
};

template <>
class [[nodiscard]] Result<void> {
 public:
  Result() = default;
  Result(Error error) : error_(std::move(error)), failed_(true) {}  // NOLINT
  bool ok() const { return !failed_; }
  explicit operator bool() const { return ok(); }
  const Error& error() const { return error_; }
  const std::string& message() const { return error_.message; }

 private:
  Error error_;
  bool failed_ = false;
};

using Status = Result<void>;

}  // namespace owl::core

// Propagates a failed Result/Status out of the calling function.
#define OWL_TRY(expr)                                   \
  do {                                                  \
    auto&& owl_try_result_ = (expr);                    \
    if (!owl_try_result_.ok()) return owl_try_result_.error(); \
  } while (0)

// Always-on invariant check: aborts with the condition and location. Not for untrusted input.
#define OWL_CHECK(cond)                                                                    \
  do {                                                                                     \
    if (!(cond)) {                                                                         \
      fmt::print(stderr, "owl: check failed: {} at {}:{}\n", #cond, __FILE__, __LINE__);  \
      std::abort();                                                                        \
    }                                                                                      \
  } while (0)
