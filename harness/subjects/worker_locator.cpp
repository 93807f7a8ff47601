#include "subjects/worker_locator.hpp"

#include <cstdlib>
#include <filesystem>

namespace procpool::harness {
namespace {

namespace fs = std::filesystem;

std::string env_or(const char* name, const char* fallback) {
  const char* value = std::getenv(name);
  return value && *value ? value : fallback;
}

// The running program's directory; empty when /proc cannot tell.
fs::path self_dir() {
  std::error_code ec;
  auto exe = fs::read_symlink("/proc/self/exe", ec);
  return ec ? fs::path{} : exe.parent_path();
}

// An installed procpool uses the SDK installed with it, so it keeps working once the build
// tree is gone; from the build tree it is the source tree's python/.
std::string python_dir() {
  if (const char* explicit_dir = std::getenv("PROCPOOL_PYTHON_DIR"); explicit_dir && *explicit_dir) {
    return explicit_dir;
  }
  std::error_code ec;
  if (auto dir = self_dir(); !dir.empty()) {
    auto installed = (dir / PROCPOOL_INSTALLED_PYTHON_DIR).lexically_normal();
    if (fs::exists(installed / "procpool_worker", ec)) return installed.string();
  }
  return PROCPOOL_PYTHON_DIR;
}

}  // namespace

std::string fake_worker_path() {
  if (const char* explicit_path = std::getenv("PROCPOOL_FAKE_WORKER"); explicit_path && *explicit_path) {
    return explicit_path;
  }
  std::error_code ec;
  if (auto dir = self_dir(); !dir.empty()) {
    // Installed, both programs are in bin/; in the build tree, the worker has its own folder.
    for (const auto& candidate :
         {dir / "procpool-fake-worker", dir / ".." / "fake_worker" / "procpool-fake-worker"}) {
      if (fs::exists(candidate, ec)) return candidate.lexically_normal().string();
    }
  }
  return "procpool-fake-worker";
}

launch_options fake_worker_launch() { return {.argv = {fake_worker_path()}}; }

launch_options python_worker_launch() {
  launch_options options{.argv = {env_or("PROCPOOL_PYTHON", PROCPOOL_PYTHON), "-m", "procpool_worker"}};
  std::string path = python_dir();
  if (const char* existing = std::getenv("PYTHONPATH"); existing && *existing) {
    path += std::string(":") + existing;
  }
  options.env["PYTHONPATH"] = path;
  return options;
}

}  // namespace procpool::harness
