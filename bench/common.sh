# Sourced by the bench scripts: the repository root, and the check that what a script runs
# has been built.
#
#   source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
#   bin="${POOL_BENCH:-$root/build/release/bench/pool_bench}"
#   require_built "$bin" --target pool_bench

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

# require_built PATH [BUILD ARGS...]: exits 1, saying how to build it, unless PATH is an
# executable.
require_built() {
  local path=$1
  shift
  if [[ ! -x "$path" ]]; then
    echo "$(basename "$0"): $path not found; build it with: cmake --build --preset release${*:+ $*}" >&2
    exit 1
  fi
}
