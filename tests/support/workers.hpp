// Test support: launch options for the workers the tests talk to.
#pragma once

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "procpool/pool_options.hpp"
#include "procpool/wire/worker_process.hpp"

namespace procpool::testing {

enum class worker_kind { fake, python };

inline std::string to_string(worker_kind k) { return k == worker_kind::fake ? "fake" : "python"; }

inline launch_options worker_launch(worker_kind kind, std::vector<std::string> flags = {}) {
  launch_options options;
  if (kind == worker_kind::fake) {
    options.argv = {PROCPOOL_FAKE_WORKER};
  } else {
    options.argv = {PROCPOOL_PYTHON, "-m", "procpool_worker"};
    options.env["PYTHONPATH"] = PROCPOOL_PYTHON_DIR;
  }
  options.argv.insert(options.argv.end(), flags.begin(), flags.end());
  return options;
}

inline pool_options fake_pool_options(nlohmann::json init_args = nlohmann::json::object(),
                                      std::size_t size = 2) {
  pool_options o;
  o.worker = worker_launch(worker_kind::fake);
  o.init_args = std::move(init_args);
  o.size = size;
  return o;
}

}  // namespace procpool::testing
