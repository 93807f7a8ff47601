// pool::map and pool::map_unordered: a batch of requests streamed through the pool.
//
// Arguments are pulled from the caller's range (or source function) lazily, on the thread
// that iterates the results, and at most `window` of them are under way or waiting to be
// read at once: memory stays bounded however long the batch, and the workers' pipes stay
// full while the consumer works on earlier results.
//
//   std::vector<nlohmann::json> inputs = ...;
//   for (procpool::result<procpool::reply> r : pool.map("resize", inputs)) { ... }  // in order
//   for (procpool::map_item item : pool.map_unordered("resize", inputs)) {         // as done
//     results[item.index] = std::move(item.outcome);
//   }
//
// Each item has its own outcome: one failure ends nothing unless stop_on_error asks. Ending
// the iteration early (destroying the range) cancels what no worker has and lets the
// requests already written finish unseen. When the pool stops, the items not yet submitted
// are not sent: the stream yields the outcomes of those already submitted, then ends.
#pragma once

#include <chrono>
#include <cstddef>
#include <functional>
#include <iterator>
#include <memory>
#include <optional>

#include <nlohmann/json.hpp>

#include "procpool/reply.hpp"
#include "procpool/result.hpp"

namespace procpool {

struct call_options;

struct map_options {
  // Requests submitted and not yet yielded. 0: pool size x pipeline_depth x 2, which keeps
  // every worker busy while the consumer lags a batch behind.
  std::size_t window = 0;
  // Each item's reply deadline, counted from its submission (default: the pool's
  // request_timeout, counted from its write).
  std::optional<std::chrono::milliseconds> item_timeout = std::nullopt;
  // After the first failed item, submit no more: the stream ends once those under way are
  // yielded.
  bool stop_on_error = false;
};

struct map_item {
  std::size_t index = 0;  // its position in the input
  result<reply> outcome;
};

// The next argument, or nullopt at the end of the batch.
using arg_source = std::function<std::optional<nlohmann::json>()>;

namespace detail {
class map_stream;  // shared by both orders (pool/src/map_stream.cpp)

// An input iterator over a stream, pulling with `next()`; the end iterator holds nothing.
template <class Item, class Stream>
class stream_iterator {
 public:
  using value_type = Item;
  using difference_type = std::ptrdiff_t;
  stream_iterator() = default;
  explicit stream_iterator(Stream* s) : stream_(s) { ++*this; }
  Item& operator*() const { return *current_; }
  Item* operator->() const { return &*current_; }
  stream_iterator& operator++() {
    current_ = stream_->next();
    if (!current_) stream_ = nullptr;
    return *this;
  }
  void operator++(int) { ++*this; }
  friend bool operator==(const stream_iterator& it, std::default_sentinel_t) {
    return it.stream_ == nullptr;
  }

 private:
  Stream* stream_ = nullptr;
  mutable std::optional<Item> current_;
};
}  // namespace detail

// In input order. Move-only; iterate once.
class map_results {
 public:
  explicit map_results(std::unique_ptr<detail::map_stream> s);
  map_results(map_results&&) noexcept;
  map_results& operator=(map_results&&) noexcept;
  ~map_results();
  // The next item's outcome, waiting for it; nullopt at the end.
  std::optional<result<reply>> next();
  auto begin() { return detail::stream_iterator<result<reply>, map_results>(this); }
  std::default_sentinel_t end() const noexcept { return {}; }

 private:
  std::unique_ptr<detail::map_stream> stream_;
};

// As each item completes. Move-only; iterate once.
class map_completions {
 public:
  explicit map_completions(std::unique_ptr<detail::map_stream> s);
  map_completions(map_completions&&) noexcept;
  map_completions& operator=(map_completions&&) noexcept;
  ~map_completions();
  std::optional<map_item> next();
  auto begin() { return detail::stream_iterator<map_item, map_completions>(this); }
  std::default_sentinel_t end() const noexcept { return {}; }

 private:
  std::unique_ptr<detail::map_stream> stream_;
};

}  // namespace procpool
