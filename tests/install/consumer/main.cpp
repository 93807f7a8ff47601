// A consumer of the installed library: a pool of the fake worker (its path is argv[1]), one
// echo call, "ok" on success. It looks at nothing in the reply beyond success, so it does
// not depend on the reply type's fields.
#include <cstdio>

#include "procpool/pool.hpp"

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: consumer FAKE_WORKER\n");
    return 2;
  }
  auto pool = procpool::pool::create({.worker = {.argv = {argv[1]}}, .size = 1});
  if (!pool) {
    std::fprintf(stderr, "pool: %s\n", pool.error().message.c_str());
    return 1;
  }
  auto r = pool->call("echo", {{"hello", "consumer"}});
  if (!r) return 1;
  std::puts("ok");
  return 0;
}
