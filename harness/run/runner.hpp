// Runs the cases of a scenario: for each, set up the environment, start the subject, drive the
// load, stop everything, and record what happened as a results.json case.
#pragma once

#include <atomic>
#include <cstddef>
#include <functional>
#include <optional>

#include <nlohmann/json.hpp>

#include "procpool/wire/worker_process.hpp"
#include "run/records.hpp"
#include "scenario/scenario.hpp"

namespace procpool::harness {

// How the scenario's worker is launched: the fake worker (with --startup-ms), the Python
// worker (its start-up delayed before exec, since it stamps t_main_ns at its first
// statement), or the configured command.
launch_options worker_launch_for(const scenario& s);

// Where the scenario's worker.start_mode reaches the pool options: the one place that knows
// which start modes the pool supports. Today that is spawn only, and zygote is refused with the
// case error returned (the case records it and runs nothing).
std::optional<case_error> apply_start_mode(const scenario& s, pool_options& options);

// One results.json case, not yet diagnosed
// (diagnosis/diagnosis.hpp's diagnose_case). `index` is the case's position in the unsharded
// expansion, which `merge` uses to restore the run's order. Stops early, and marks the case interrupted, when
// `interrupted` becomes true.
case_record run_case(const scenario_case& c, std::size_t index, const std::atomic<bool>& interrupted);

}  // namespace procpool::harness
