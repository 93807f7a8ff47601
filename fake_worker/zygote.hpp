// The fake worker's zygote template (`procpool-fake-worker --zygote`, pool/ZYGOTE.md): runs
// the preload once, sends `ready` on the control channel, then forks, reaps and reports
// children on request until the channel reaches EOF. Each forked child runs `worker_main`,
// the ordinary fake worker loop on its own pipes.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>

namespace procpool::fake {

struct template_options {
  int control_fd = 0;           // PROCPOOL_ZYGOTE_FD
  std::int64_t t_main_ns = 0;   // the template's own stamp, taken first thing
  double preload_ms = 0;        // the preload's duration (the startup_ms knob, in this mode)
  std::size_t preload_mib = 0;  // private memory touched by the preload
};

// Runs in each forked child once it is set up, with the child's t_main_ns; must not return
// (if it does, the child _exits 0: it can never fall back into the template's loop).
using worker_main = std::function<void(std::int64_t t_main_ns)>;

// The template's life. Returns its exit code: 0 at EOF on the channel, 70 (EX_SOFTWARE) after
// `preload_failed`, 1 when the channel fails otherwise. Every child still held is SIGKILLed
// (its group) and reaped before it returns.
int serve_template(const template_options& options, const worker_main& worker);

}  // namespace procpool::fake
