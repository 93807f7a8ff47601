#include "subjects/subject.hpp"

#include "subjects/external_subject.hpp"
#include "subjects/reference_pools.hpp"

namespace procpool::harness {
namespace {

// The subject interface speaks the wire's response, shared with the reference pools.
result<response> as_response(result<reply> r) {
  if (!r) return std::move(r).error();
  return response{.id = r->request_id,
                  .result = std::move(r->value),
                  .t_recv_ns = r->timing.t_worker_recv,
                  .t_done_ns = r->timing.t_worker_done};
}

class procpool_subject final : public subject {
 public:
  explicit procpool_subject(pool p) : pool_(std::move(p)) {}

  result<response> call(std::string_view command, nlohmann::json args,
                        const call_options& options) override {
    return as_response(pool_.call(command, std::move(args), options));
  }
  bool submit(std::string_view command, nlohmann::json args, const call_options& options,
              subject_completion done) override {
    pool_.submit(command, std::move(args), options,
                 [done = std::move(done)](result<reply> r) { done(as_response(std::move(r))); });
    return true;
  }
  bool wait_ready(deadline until) override {
    return pool_.wait_ready(until) == ready_state::ready;
  }
  pool_stats stats() const override { return pool_.stats(); }
  void stop(const stop_options& options) override { pool_.stop(options); }

 private:
  pool pool_;
};

}  // namespace

result<std::unique_ptr<subject>> make_subject(const subject_config& config, pool_options options,
                                              subject_start start) {
  switch (config.kind) {
    case subject_type::serial_manager: return make_serial_manager_pool(std::move(options));
    case subject_type::sequential_init: return make_sequential_init_pool(std::move(options));
    case subject_type::external: return make_external_subject(config.command, std::move(options), start);
    case subject_type::procpool: break;
  }
  auto p = pool::create(std::move(options));
  if (!p) return std::move(p).error();
  return std::unique_ptr<subject>(std::make_unique<procpool_subject>(std::move(*p)));
}

}  // namespace procpool::harness
