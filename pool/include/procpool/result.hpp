// A value or a procpool::error: the return type of every fallible procpool call.
//
// A small stand-in for C++23 std::expected, kept deliberately minimal. The error type is
// procpool::error unless another is named (the harness's configuration errors carry a file,
// line and key instead):
//
//   procpool::result<int> parse(std::string_view s);
//   auto r = parse("42");
//   if (!r) return r.error();   // propagate
//   use(*r);
#pragma once

#include <cassert>
#include <utility>
#include <variant>

#include "procpool/error.hpp"

namespace procpool {

template <class T, class E = procpool::error>
class [[nodiscard]] result {
 public:
  result(T value) : state_(std::in_place_index<0>, std::move(value)) {}
  result(E e) : state_(std::in_place_index<1>, std::move(e)) {}

  bool has_value() const noexcept { return state_.index() == 0; }
  explicit operator bool() const noexcept { return has_value(); }

  // REQUIRES: has_value()
  T& value() & { assert(has_value()); return std::get<0>(state_); }
  const T& value() const& { assert(has_value()); return std::get<0>(state_); }
  T&& value() && { assert(has_value()); return std::get<0>(std::move(state_)); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T&& operator*() && { return std::move(*this).value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }

  // REQUIRES: !has_value()
  const E& error() const& { assert(!has_value()); return std::get<1>(state_); }
  E&& error() && { assert(!has_value()); return std::get<1>(std::move(state_)); }

 private:
  std::variant<T, E> state_;
};

template <class E>
class [[nodiscard]] result<void, E> {
 public:
  result() = default;
  result(E e) : error_(std::move(e)), failed_(true) {}

  bool has_value() const noexcept { return !failed_; }
  explicit operator bool() const noexcept { return has_value(); }

  // REQUIRES: !has_value()
  const E& error() const& { assert(failed_); return error_; }
  E&& error() && { assert(failed_); return std::move(error_); }

 private:
  E error_{};
  bool failed_ = false;
};

}  // namespace procpool
