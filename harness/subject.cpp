#include "subject.hpp"

#include "reference_pools.hpp"

namespace procpool::harness {
namespace {

class procpool_subject final : public subject {
 public:
  explicit procpool_subject(pool p) : pool_(std::move(p)) {}

  result<response> call(std::string_view command, nlohmann::json args,
                        const call_options& options) override {
    return pool_.call(command, std::move(args), options);
  }
  bool wait_ready(deadline until) override { return pool_.wait_ready(until); }
  pool_stats stats() const override { return pool_.stats(); }
  void stop(const stop_options& options) override { pool_.stop(options); }

 private:
  pool pool_;
};

}  // namespace

std::string_view to_string(subject_kind kind) noexcept {
  switch (kind) {
    case subject_kind::procpool: return "procpool";
    case subject_kind::serial_manager: return "serial-manager";
    case subject_kind::sequential_init: return "sequential-init";
  }
  return "unknown";
}

std::optional<subject_kind> parse_subject_kind(std::string_view name) noexcept {
  for (auto kind : {subject_kind::procpool, subject_kind::serial_manager,
                    subject_kind::sequential_init}) {
    if (name == to_string(kind)) return kind;
  }
  return std::nullopt;
}

result<std::unique_ptr<subject>> make_subject(subject_kind kind, pool_options options) {
  switch (kind) {
    case subject_kind::serial_manager: return make_serial_manager_pool(std::move(options));
    case subject_kind::sequential_init: return make_sequential_init_pool(std::move(options));
    case subject_kind::procpool: break;
  }
  auto p = pool::create(std::move(options));
  if (!p) return std::move(p).error();
  return std::unique_ptr<subject>(std::make_unique<procpool_subject>(std::move(*p)));
}

}  // namespace procpool::harness
