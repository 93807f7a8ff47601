// A process that owns a pool of fake workers, each with a grandchild, for the no-orphans
// test: it prints "ready" once the pool is up, then waits to be killed.
//   pool_owner FAKE_WORKER [zygote]   (zygote: start_mode zygote, pool/ZYGOTE.md)
#include <unistd.h>

#include <cstdio>
#include <string_view>

#include "procpool/pool.hpp"

int main(int argc, char** argv) {
  if (argc < 2) return 2;
  procpool::pool_options options;
  options.worker = {.argv = {argv[1], "--grandchild"}};
  if (argc > 2 && std::string_view(argv[2]) == "zygote") {
    options.worker.start_mode = procpool::start_mode::zygote;
  }
  options.size = 3;
  auto p = procpool::pool::create(options);
  if (!p || p->wait_ready(procpool::deadline_after(std::chrono::seconds(20))) !=
                procpool::ready_state::ready) {
    return 1;
  }
  std::puts("ready");
  std::fflush(stdout);
  while (true) ::pause();
}
