// Internal: a counter that threads on different CPUs bump without passing one cache line
// between them on every call.
//
// Each thread adds to one of a few cells of its own cache line, chosen once per thread; a
// read sums the cells. Reads are not atomic snapshots across cells, which a running total
// does not need.
//
//   sharded_counter calls_ok;
//   ++calls_ok;                        // on the request path, any thread
//   std::uint64_t n = calls_ok.load(); // in stats()
#pragma once

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>

namespace procpool::detail {

class sharded_counter {
 public:
  void operator++() noexcept {
    cells_[cell_of_this_thread()].value.fetch_add(1, std::memory_order_relaxed);
  }

  std::uint64_t load() const noexcept {
    std::uint64_t sum = 0;
    for (const auto& c : cells_) sum += c.value.load(std::memory_order_relaxed);
    return sum;
  }

 private:
  static constexpr std::size_t cell_count = 8;
  // 64 bytes: a cache line on the targets procpool builds for.
  struct alignas(64) cell {
    std::atomic<std::uint64_t> value{0};
  };

  // Threads take cells in the order they first count, so a few busy callers get a cell each.
  static std::size_t cell_of_this_thread() noexcept {
    static std::atomic<std::size_t> next_cell{0};
    thread_local const std::size_t mine =
        next_cell.fetch_add(1, std::memory_order_relaxed) % cell_count;
    return mine;
  }

  std::array<cell, cell_count> cells_;
};

}  // namespace procpool::detail
