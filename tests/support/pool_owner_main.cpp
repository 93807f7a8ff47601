// A process that owns a pool of fake workers, each with a grandchild, for the no-orphans
// test: it prints "ready" once the pool is up, then waits to be killed.
#include <unistd.h>

#include <cstdio>

#include "procpool/pool.hpp"

int main(int argc, char** argv) {
  if (argc < 2) return 2;
  procpool::pool_options options;
  options.worker = {.argv = {argv[1], "--grandchild"}};
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
