#include "subjects/worker_locator.hpp"

#include <cstdlib>
#include <filesystem>

namespace procpool::harness {
namespace {

std::string env_or(const char* name, const char* fallback) {
  const char* value = std::getenv(name);
  return value && *value ? value : fallback;
}

}  // namespace

std::string fake_worker_path() {
  if (const char* explicit_path = std::getenv("PROCPOOL_FAKE_WORKER"); explicit_path && *explicit_path) {
    return explicit_path;
  }
  std::error_code ec;
  const auto self_dir = std::filesystem::read_symlink("/proc/self/exe", ec).parent_path();
  if (!ec) {
    for (const auto& candidate : {self_dir / "procpool-fake-worker",
                                  self_dir / ".." / "fake_worker" / "procpool-fake-worker"}) {
      if (std::filesystem::exists(candidate, ec)) return candidate.lexically_normal().string();
    }
  }
  return "procpool-fake-worker";
}

launch_options fake_worker_launch() { return {.argv = {fake_worker_path()}}; }

launch_options python_worker_launch() {
  launch_options options{.argv = {env_or("PROCPOOL_PYTHON", PROCPOOL_PYTHON), "-m", "procpool_worker"}};
  std::string path = env_or("PROCPOOL_PYTHON_DIR", PROCPOOL_PYTHON_DIR);
  if (const char* existing = std::getenv("PYTHONPATH"); existing && *existing) {
    path += std::string(":") + existing;
  }
  options.env["PYTHONPATH"] = path;
  return options;
}

}  // namespace procpool::harness
