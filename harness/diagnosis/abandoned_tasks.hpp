// Tasks that outlived their caller's deadline. An external pool cannot cancel a task: when a
// request times out its task keeps a worker busy until it finishes, and a later request may
// wait behind it. A driver reports a task only when it completes (a late completion, with the
// worker and stamps), so a task that never completes (hung, or running when its worker died)
// leaves its worker silent: no events from then on, which would read as an idle worker.
// This finds both kinds, so that the diagnosis can count them as the occupancy they were.
//
//   const abandoned_tasks a = find_abandoned_tasks(timelines, t_end);
//   for (const auto& run : a.hidden) ...   // never-completed request -> the silent worker
//   for (const auto& s : a.spans) ...      // a worker busy for a caller that had given up
//
// procpool's own records never have either: it kills a worker whose request timed out.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "run/records.hpp"

namespace procpool::harness {

// A request that timed out and never completed, presumed running on a worker that went
// silent: the worker reported nothing more until the end of the case or its death, and either
// it died while the request waited, or a task handed to the pool after this one started (so
// this one was not merely queued), or it stayed silent at least as long as the request's
// caller waited with no older task queued for it.
struct hidden_run {
  std::size_t request = 0;  // index into requests_failed
  std::uint64_t worker = 0;
  std::int64_t since = 0;   // when it took the worker: its last event, or the request's submission
  std::int64_t until = 0;   // the worker's exit, or the end of the case
  bool died = false;        // the worker then died of a fault
};

// A worker busy with the task of a request whose caller had already given up.
struct abandoned_span {
  std::size_t request = 0;  // index into requests_failed
  std::uint64_t worker = 0;
  std::int64_t begin = 0;
  std::int64_t end = 0;
};

struct abandoned_tasks {
  std::vector<hidden_run> hidden;
  std::vector<abandoned_span> spans;
  // Requests that timed out and never completed, not placed on any worker: queued in the
  // pool, or running when the case ended. While any exist, the last moments of the case are
  // uncertain: a worker that looks idle may have been running one.
  std::size_t unplaced = 0;
  std::int64_t longest_task_ns = 0;  // the longest task the record shows
};

abandoned_tasks find_abandoned_tasks(const case_timelines& tl, std::int64_t t_end);

// Whether a failed request timed out before any worker was known to run it, and never
// completed: an external pool's task with no done line at all.
bool never_completed(const timeline_record& t) noexcept;

}  // namespace procpool::harness
