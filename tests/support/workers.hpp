// Test support: launch options for the workers the tests talk to.
#pragma once

#include <string>
#include <vector>

#include "procpool/worker_process.hpp"

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

}  // namespace procpool::testing
