// The verdicts, one table: each verdict's name, family, one-line meaning and chart colour,
// and each family's colour. The scenario checks forbid_verdicts patterns against it, the
// diagnosis names its verdicts from it, the reports describe and colour them from it. The
// names are a contract (harness/diagnosis/verdicts.md).
#pragma once

#include <array>
#include <string_view>

namespace procpool::harness {

struct verdict_info {
  std::string_view name;
  std::string_view family;
  std::string_view meaning;
  std::string_view colour;  // a shade of the family's colour
};

inline constexpr auto verdict_table = std::to_array<verdict_info>({
    {"environmental.startup", "environmental", "a worker's process start was slow", "#1e40af"},
    {"environmental.init", "environmental", "the init handshake was slow", "#3b82f6"},
    {"environmental.contention", "environmental", "the host was short of CPU", "#93c5fd"},
    {"capacity", "capacity", "all workers were busy with real work", "#d97706"},
    {"workload", "workload", "the task itself outlived the deadline", "#7c3aed"},
    {"architectural.dispatch", "architectural", "a request waited while a ready worker sat idle",
     "#991b1b"},
    {"architectural.startup_serialization", "architectural",
     "workers started one at a time with slots and CPU free", "#dc2626"},
    {"architectural.scaling", "architectural", "throughput does not grow with workers",
     "#f87171"},
    {"fault.crash", "fault", "a worker died", "#1f2937"},
    {"fault.hang", "fault", "a worker stopped answering", "#6b7280"},
    {"fault.protocol", "fault", "a worker broke the framing", "#9ca3af"},
});

struct verdict_family_info {
  std::string_view name;
  std::string_view colour;
};

// In the order charts stack them: causes outside the pool first, the pool's own last.
inline constexpr auto verdict_families = std::to_array<verdict_family_info>({
    {"environmental", "#2563eb"},
    {"capacity", "#d97706"},
    {"workload", "#7c3aed"},
    {"architectural", "#dc2626"},
    {"fault", "#4b5563"},
});

// Failures without a (known) verdict.
inline constexpr std::string_view unknown_verdict_colour = "#db2777";

constexpr const verdict_info* find_verdict(std::string_view name) noexcept {
  for (const auto& v : verdict_table) {
    if (v.name == name) return &v;
  }
  return nullptr;
}

constexpr const verdict_family_info* find_verdict_family(std::string_view name) noexcept {
  for (const auto& f : verdict_families) {
    if (f.name == name) return &f;
  }
  return nullptr;
}

// "environmental", "architectural", "capacity", "workload" or "fault"; for a name the table
// does not know (a document from another version), the text before its first dot.
constexpr std::string_view verdict_family(std::string_view name) noexcept {
  if (const auto* v = find_verdict(name)) return v->family;
  return name.substr(0, name.find('.'));
}

// The one-line meaning; empty for names the table does not know.
constexpr std::string_view verdict_meaning(std::string_view name) noexcept {
  const auto* v = find_verdict(name);
  return v ? v->meaning : std::string_view{};
}

constexpr std::string_view family_colour(std::string_view family) noexcept {
  const auto* f = find_verdict_family(family);
  return f ? f->colour : unknown_verdict_colour;
}

constexpr std::string_view verdict_colour(std::string_view name) noexcept {
  const auto* v = find_verdict(name);
  return v ? v->colour : family_colour(verdict_family(name));
}

namespace detail {
// The table's name for `name`, failing to compile when the table lacks it.
consteval std::string_view verdict_name(std::string_view name) {
  return find_verdict(name)->name;
}
}  // namespace detail

// The verdicts by name, for code that produces or tests for one.
namespace verdict {
inline constexpr std::string_view startup = detail::verdict_name("environmental.startup");
inline constexpr std::string_view init = detail::verdict_name("environmental.init");
inline constexpr std::string_view contention = detail::verdict_name("environmental.contention");
inline constexpr std::string_view capacity = detail::verdict_name("capacity");
inline constexpr std::string_view workload = detail::verdict_name("workload");
inline constexpr std::string_view dispatch = detail::verdict_name("architectural.dispatch");
inline constexpr std::string_view startup_serialization =
    detail::verdict_name("architectural.startup_serialization");
inline constexpr std::string_view scaling = detail::verdict_name("architectural.scaling");
inline constexpr std::string_view crash = detail::verdict_name("fault.crash");
inline constexpr std::string_view hang = detail::verdict_name("fault.hang");
inline constexpr std::string_view protocol = detail::verdict_name("fault.protocol");
}  // namespace verdict

static_assert([] {
  for (const auto& v : verdict_table) {
    if (!find_verdict_family(v.family) || !v.name.starts_with(v.family)) return false;
  }
  return true;
}(), "every verdict belongs to a family of verdict_families and is named after it");

}  // namespace procpool::harness
