// pool::submit and pool::map: requests handed to the dispatcher instead of a caller's thread.
#include <condition_variable>
#include <deque>
#include <unordered_map>

#include <fmt/format.h>

#include "pool_dispatcher.hpp"
#include "pool_impl.hpp"
#include "procpool/wire/frame.hpp"
#include "procpool/wire/message.hpp"

namespace procpool {
dispatcher* pool::impl::dispatcher_for_submit() {
  if (auto* d = dispatcher_ready.load(std::memory_order_acquire)) return d;
  std::lock_guard lock(mutex);
  if (stopping) return nullptr;
  if (!disp) {
    disp = std::make_unique<dispatcher>(*this);
    dispatcher_ready.store(disp.get(), std::memory_order_release);
  }
  return disp.get();
}

reply_future pool::impl::submit(std::string_view command, const nlohmann::json& args,
                                const call_options& co, completion done, std::uint64_t& id,
                                bool wake) {
  auto* r = new detail::pending_request();
  auto& t = r->timeline;
  t.t_submit = monotonic_ns();
  t.request_id = id = take_request_id();
  r->checkout_deadline_ns =
      to_ns(co.checkout_deadline.value_or(from_ns(t.t_submit) + options.checkout_timeout));
  r->reply_deadline_ns = co.reply_deadline ? to_ns(*co.reply_deadline) : 0;
  reply_future future(r);
  if (done) future.then(std::move(done));

  // Before it is queued the request is the submitter's to fail, on this thread.
  auto fail_now = [&](errc code, std::string message) {
    r->claim_outcome();
    t.t_reply = monotonic_ns();
    t.outcome = code;
    ++totals.failures;
    emit(t);
    r->deliver(error{code, std::move(message)});
    r->release();
    return std::move(future);
  };
  dispatcher* d = dispatcher_for_submit();
  if (!d) return fail_now(errc::pool_stopped, "the pool is stopped");
  if (options.max_queue != 0 && d->queued() >= options.max_queue) {
    return fail_now(errc::queue_full,
                    fmt::format("{} submitted requests are already queued", d->queued()));
  }
  const std::size_t header = begin_frame(r->frame);
  encode_into(r->frame, {t.request_id, command, args});
  end_frame(r->frame, header);
  if (!d->enqueue(r, wake)) return fail_now(errc::pool_stopped, "the pool is stopped");
  return future;
}

// --- map ----------------------------------------------------------------------------------------

namespace detail {

// Both orders: a window of submitted, unyielded items refilled on the consuming thread.
class map_stream {
 public:
  map_stream(pool::impl& pool, std::string_view command, arg_source next, map_options options,
             bool ordered)
      : pool_(pool), command_(command), next_(std::move(next)), options_(options),
        ordered_(ordered), done_(std::make_shared<completed>()) {
    window_ = options_.window != 0 ? options_.window
                                   : pool.options.size * pool.options.pipeline_depth * 2;
  }
  ~map_stream() {
    // Unsent items are taken back; written ones finish unseen.
    for (auto& f : in_order_) f.cancel();
    for (auto& [index, state] : unordered_) {
      reply_future handle(state);
      handle.cancel();
    }
  }

  std::optional<map_item> next() {
    fill();
    if (ordered_) {
      if (in_order_.empty()) return std::nullopt;
      map_item item{.index = yielded_++, .outcome = in_order_.front().get()};
      in_order_.pop_front();
      note(item);
      return item;
    }
    if (unordered_.empty()) return std::nullopt;
    std::unique_lock lock(done_->mutex);
    done_->ready.wait(lock, [&] { return !done_->items.empty(); });
    map_item item = std::move(done_->items.front());
    done_->items.pop_front();
    lock.unlock();
    if (auto it = unordered_.find(item.index); it != unordered_.end()) {
      it->second->release();
      unordered_.erase(it);
    }
    note(item);
    return item;
  }

 private:
  struct completed {
    std::mutex mutex;
    std::condition_variable ready;
    std::deque<map_item> items;
  };

  std::size_t outstanding() const { return ordered_ ? in_order_.size() : unordered_.size(); }

  void note(const map_item& item) {
    if (!item.outcome) {
      if (options_.stop_on_error) source_done_ = true;
      if (item.outcome.error().code == errc::pool_stopped) source_done_ = true;
    }
  }

  // Refilled half a window at a time, not one item per item yielded, and the dispatcher woken
  // once at the end: the submissions of a refill reach it together, and it writes them to
  // the workers in one go rather than waking for the first and again for the rest.
  void fill() {
    if (outstanding() > window_ / 2) return;
    const std::size_t submitted_before = submitted_;
    while (!source_done_ && outstanding() < window_) {
      auto arg = next_();
      if (!arg) {
        source_done_ = true;
        break;
      }
      call_options co;
      if (options_.item_timeout) {
        co.reply_deadline = std::chrono::steady_clock::now() + *options_.item_timeout;
      }
      const std::size_t index = submitted_++;
      std::uint64_t id = 0;
      if (ordered_) {
        in_order_.push_back(pool_.submit(command_, std::move(*arg), co, nullptr, id, false));
        continue;
      }
      auto future = pool_.submit(command_, std::move(*arg), co, nullptr, id, false);
      // The stream keeps a reference of its own so that it can cancel at destruction.
      future.state_->add_ref();
      unordered_.emplace(index, future.state_);
      future.then([done = done_, index](result<reply> outcome) {
        std::lock_guard lock(done->mutex);
        done->items.push_back(map_item{.index = index, .outcome = std::move(outcome)});
        done->ready.notify_one();
      });
    }
    if (submitted_ > submitted_before) {
      if (auto* d = pool_.dispatcher_ready.load(std::memory_order_acquire)) d->wake_if_parked();
    }
  }

  pool::impl& pool_;
  std::string command_;
  arg_source next_;
  map_options options_;
  bool ordered_;
  std::size_t window_ = 1;
  bool source_done_ = false;
  std::size_t submitted_ = 0;
  std::size_t yielded_ = 0;
  std::deque<reply_future> in_order_;
  std::unordered_map<std::size_t, pending_request*> unordered_;
  std::shared_ptr<completed> done_;
};

}  // namespace detail

map_results::map_results(std::unique_ptr<detail::map_stream> s) : stream_(std::move(s)) {}
map_results::map_results(map_results&&) noexcept = default;
map_results& map_results::operator=(map_results&&) noexcept = default;
map_results::~map_results() = default;
std::optional<result<reply>> map_results::next() {
  if (!stream_) return std::nullopt;
  auto item = stream_->next();
  if (!item) return std::nullopt;
  return std::move(item->outcome);
}

map_completions::map_completions(std::unique_ptr<detail::map_stream> s)
    : stream_(std::move(s)) {}
map_completions::map_completions(map_completions&&) noexcept = default;
map_completions& map_completions::operator=(map_completions&&) noexcept = default;
map_completions::~map_completions() = default;
std::optional<map_item> map_completions::next() {
  return stream_ ? stream_->next() : std::nullopt;
}

map_results pool::map(std::string_view command, arg_source next, const map_options& options) {
  if (!impl_) return map_results(nullptr);
  return map_results(
      std::make_unique<detail::map_stream>(*impl_, command, std::move(next), options, true));
}

map_completions pool::map_unordered(std::string_view command, arg_source next,
                                    const map_options& options) {
  if (!impl_) return map_completions(nullptr);
  return map_completions(
      std::make_unique<detail::map_stream>(*impl_, command, std::move(next), options, false));
}

}  // namespace procpool
