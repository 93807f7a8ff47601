// Finds the worker programs the harness runs: the fake worker next to the procpool binary
// (installed, or in the build tree), and the Python worker on the system interpreter.
#pragma once

#include <string>

#include "procpool/wire/worker_process.hpp"

namespace procpool::harness {

// PROCPOOL_FAKE_WORKER, else procpool-fake-worker beside this executable or in the build
// tree's fake_worker/, else the bare name (looked up in PATH at launch).
std::string fake_worker_path();

// `python3 -m procpool_worker` on the real interpreter (PROCPOOL_PYTHON or the one found at
// configure time), with the SDK's directory on PYTHONPATH: PROCPOOL_PYTHON_DIR, else the one
// installed with this program (share/procpool/python), else the source tree's python/.
launch_options python_worker_launch();

launch_options fake_worker_launch();

}  // namespace procpool::harness
