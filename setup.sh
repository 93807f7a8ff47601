#!/usr/bin/env bash
# Sets up a Debian 12 machine for procpool, builds it, and runs the main job or the tests.
#
#   ./setup.sh run     install what is missing, build, run the default scenario
#                      (scenarios/quickstart.toml with the fake worker) and say where the
#                      results are
#   ./setup.sh test    install what is missing (Chromium too, to render report.html), build,
#                      run every test suite with CTest, the pool's suites again under
#                      AddressSanitizer+UBSan and ThreadSanitizer, and each fuzz target for
#                      a short while (tests/fuzz/README.md)
#   ./setup.sh build   install what is missing and build the release preset only
#
# Packages already installed are not touched; apt-get runs only when one is missing.
set -euo pipefail
cd "$(dirname "$0")"

packages=(
  cmake ninja-build g++ pkg-config python3
  libboost1.81-dev libboost-filesystem1.81-dev libboost-math1.81-dev
  libfmt-dev libcli11-dev nlohmann-json3-dev libtomlplusplus-dev
  libgtest-dev libgmock-dev libbenchmark-dev libsqlite3-dev
)
# Only the tests need these: Chromium renders report.html headless (tests/reports/report_render_test.py);
# pip and venv install the Python SDK as a package (tests/install/python_package_test.py);
# PyYAML reads the CI manifests whose commands tests/ci_manifests_test.py runs; clang and its
# runtime libraries (libFuzzer, the sanitizers) build the fuzz targets (tests/fuzz); numpy is
# the real heavy preload of the zygote mode: python/tests/test_zygote.py checks that forked
# workers reseed its global generator (skipped without it), and scenarios/zygote.toml
# preloads it. Chromium is large, so `run` and `build` go without these.
test_packages=(chromium python3-pip python3-venv python3-yaml clang libclang-rt-14-dev
               python3-numpy)

say() { printf '==> %s\n' "$*"; }

install_missing_packages() {
  local missing=()
  for pkg in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  say "installing ${missing[*]}"
  local sudo=()
  [ "$(id -u)" -eq 0 ] || sudo=(sudo)
  "${sudo[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
}

build() {
  local preset=$1
  say "building preset $preset"
  cmake --preset "$preset" >/dev/null
  cmake --build --preset "$preset"
}

main() {
  local mode=${1:-}
  case "$mode" in
    run|test|build) ;;
    *) echo "usage: $0 run|test|build" >&2; exit 2 ;;
  esac
  if [ "$mode" = test ]; then packages+=("${test_packages[@]}"); fi
  install_missing_packages
  build release
  # Python reads compiled modules even where the environment forbids writing them; without
  # them every Python worker start would recompile the SDK and count it as init overhead.
  python3 -m compileall -q python/procpool_worker
  case "$mode" in
    run)
      say "running: procpool run scenarios/quickstart.toml"
      ./build/release/harness/procpool run scenarios/quickstart.toml
      ;;
    test)
      for preset in asan tsan fuzz; do build "$preset"; done
      # The sanitizer runs cover the pool, its workers and their tests; the harness's suites,
      # the Python suites and the long stress tests run once, in release.
      for preset in asan tsan; do
        say "testing preset $preset"
        ctest --preset "$preset" --label-exclude "python|long"
      done
      # Each fuzz target for PROCPOOL_FUZZ_SECONDS (20) on its seed corpus, two at a time.
      say "fuzzing (preset fuzz)"
      ctest --preset fuzz --label-regex fuzz
      say "testing preset release"
      ctest --preset release
      ;;
  esac
}

main "$@"
