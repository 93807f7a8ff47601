// Echo round trips through worker_connection to the fake and the Python worker.
#include <benchmark/benchmark.h>

#include "procpool/wire/worker_connection.hpp"
#include "subjects/worker_locator.hpp"

namespace {

using namespace std::chrono_literals;

void echo_round_trips(benchmark::State& state, const procpool::launch_options& launch) {
  auto conn = procpool::worker_connection::start(launch);
  if (!conn) return state.SkipWithError(conn.error().message.c_str());
  if (auto hello = conn->handshake(nlohmann::json::object(), procpool::deadline_after(30s)); !hello) {
    return state.SkipWithError(hello.error().message.c_str());
  }
  const std::string payload(64, 'x');
  std::uint64_t id = 0;
  for (auto _ : state) {
    auto reply = conn->call(procpool::request{.id = ++id, .command = "echo", .args = payload},
                            procpool::deadline_after(10s));
    if (!reply) return state.SkipWithError(reply.error().message.c_str());
  }
  conn->process().stop({});
}

void BM_ConnectionEcho_Fake(benchmark::State& state) {
  echo_round_trips(state, procpool::harness::fake_worker_launch());
}
void BM_ConnectionEcho_Python(benchmark::State& state) {
  echo_round_trips(state, procpool::harness::python_worker_launch());
}

BENCHMARK(BM_ConnectionEcho_Fake)->UseRealTime();
BENCHMARK(BM_ConnectionEcho_Python)->UseRealTime();

}  // namespace

BENCHMARK_MAIN();
