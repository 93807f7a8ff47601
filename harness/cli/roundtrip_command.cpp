#include "cli/roundtrip_command.hpp"

#include <algorithm>
#include <cmath>
#include <memory>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "procpool/wire/worker_connection.hpp"
#include "subjects/worker_locator.hpp"

namespace procpool::harness {
namespace {

using namespace std::chrono_literals;

struct roundtrip_options {
  std::vector<std::string> workers = {"fake", "python"};
  int requests = 1000;
  int payload_bytes = 64;
};

struct roundtrip_figures {
  double startup_ms = 0;  // spawn to the worker's main
  double init_ms = 0;     // main to init done
  std::vector<double> round_trip_us;
  std::vector<double> worker_us;  // t_done - t_recv: time spent inside the worker
};

// Nearest-rank percentile of sorted samples.
double percentile(const std::vector<double>& sorted, double p) {
  if (sorted.empty()) return 0;
  const auto rank = static_cast<std::size_t>(std::ceil(p / 100.0 * sorted.size()));
  return sorted[std::clamp<std::size_t>(rank, 1, sorted.size()) - 1];
}

result<roundtrip_figures> measure(const launch_options& launch, const roundtrip_options& opts) {
  auto conn = worker_connection::start(launch);
  if (!conn) return std::move(conn).error();
  auto hello = conn->handshake(nlohmann::json::object(), deadline_after(30s));
  if (!hello) return std::move(hello).error();

  roundtrip_figures figures;
  figures.startup_ms = (hello->t_main_ns - conn->process().t_spawn_ns()) / 1e6;
  figures.init_ms = (hello->t_init_done_ns - hello->t_main_ns) / 1e6;
  const std::string payload(static_cast<std::size_t>(opts.payload_bytes), 'x');
  for (int i = 1; i <= opts.requests; ++i) {
    const request req{.id = static_cast<std::uint64_t>(i), .command = "echo", .args = payload};
    const std::int64_t t_send = monotonic_ns();
    auto reply = conn->call(req, deadline_after(10s));
    const std::int64_t t_reply = monotonic_ns();
    if (!reply) return std::move(reply).error();
    if (!reply->ok || reply->result != payload) {
      return error{errc::protocol_error, fmt::format("echo {} came back altered", i)};
    }
    figures.round_trip_us.push_back((t_reply - t_send) / 1e3);
    figures.worker_us.push_back((reply->t_done_ns - reply->t_recv_ns) / 1e3);
  }
  conn->process().stop({});
  std::sort(figures.round_trip_us.begin(), figures.round_trip_us.end());
  std::sort(figures.worker_us.begin(), figures.worker_us.end());
  return figures;
}

int run(const roundtrip_options& opts) {
  fmt::print("{} echo round trips of {} bytes per worker\n\n", opts.requests, opts.payload_bytes);
  fmt::print("{:<8} {:>11} {:>9} {:>12} {:>12} {:>12} {:>14}\n", "worker", "startup_ms",
             "init_ms", "rt_p50_us", "rt_p99_us", "rt_max_us", "in_worker_p50");
  int exit_code = 0;
  for (const auto& kind : opts.workers) {
    const launch_options launch = kind == "fake" ? fake_worker_launch() : python_worker_launch();
    auto figures = measure(launch, opts);
    if (!figures) {
      fmt::print(stderr, "procpool roundtrip: {} worker ({}): {}: {}\n", kind,
                 fmt::join(launch.argv, " "), to_string(figures.error().code),
                 figures.error().message);
      exit_code = 1;
      continue;
    }
    const auto& rt = figures->round_trip_us;
    fmt::print("{:<8} {:>11.1f} {:>9.1f} {:>12.1f} {:>12.1f} {:>12.1f} {:>14.1f}\n", kind,
               figures->startup_ms, figures->init_ms, percentile(rt, 50), percentile(rt, 99),
               rt.back(), percentile(figures->worker_us, 50));
  }
  return exit_code;
}

}  // namespace

void add_roundtrip_command(CLI::App& app, int& exit_code) {
  auto opts = std::make_shared<roundtrip_options>();
  auto* cmd = app.add_subcommand(
      "roundtrip",
      "Start each worker, do the init handshake and time a burst of echo round trips. "
      "Prints spawn-to-main (startup_ms), main-to-init-done (init_ms), round-trip "
      "percentiles and the time spent inside the worker.");
  cmd->add_option("--worker", opts->workers, "workers to measure: fake, python")
      ->check(CLI::IsMember({"fake", "python"}))
      ->capture_default_str();
  cmd->add_option("--requests", opts->requests, "echo round trips per worker")
      ->check(CLI::Range(1, 10'000'000))
      ->capture_default_str();
  cmd->add_option("--payload-bytes", opts->payload_bytes, "size of the echoed string")
      ->check(CLI::Range(0, 8 << 20))
      ->capture_default_str();
  cmd->callback([opts, &exit_code] { exit_code = run(*opts); });
}

}  // namespace procpool::harness
