#!/usr/bin/env bash
# auth-service entry point: builds the release binary when the sources changed, then runs it.
#
#   ./run.sh profile tokens          profile the token path end to end (main job)
#   ./run.sh test                    the test suite (what CI runs)
#   ./run.sh bench [--quick]         benchmarks, ratios measured in one run
#   ./run.sh serve --kong-sim        the service on :3000 with an embedded Kong simulator
#   ./run.sh <any auth-service subcommand and flags>
#
# The old service's script names still work: profile:scenario:tokens|health|validate|mixed,
# test:k6:smoke:health, test:k6:load (with --duration=N, ENABLE_PROFILING, K6_SMOKE_VUS,
# K6_SMOKE_DURATION).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$root"
binary="$root/target/release/auth-service"

build_if_needed() {
  if [[ ! -x "$binary" ]] || [[ -n "$(find src Cargo.toml Cargo.lock .cargo -newer "$binary" -print -quit 2>/dev/null)" ]]; then
    echo "run.sh: building the release binary" >&2
    cargo build --release --quiet
  fi
}

if [[ $# -eq 0 ]]; then
  sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'
  exit 2
fi

command="$1"
shift
case "$command" in
  test)
    exec cargo test "$@"
    ;;
  bench)
    build_if_needed
    # The allocator row compares against the same service on the plain System allocator.
    system_alloc="$root/target/system-alloc/release/auth-service"
    if [[ ! -x "$system_alloc" ]] || [[ -n "$(find src Cargo.toml Cargo.lock .cargo -newer "$system_alloc" -print -quit 2>/dev/null)" ]]; then
      echo "run.sh: building the system-alloc binary for the allocator benchmark" >&2
      cargo build --release --quiet --features system-alloc --target-dir target/system-alloc
    fi
    exec "$binary" bench --system-alloc-binary "$system_alloc" "$@"
    ;;
  profile:scenario:tokens | profile:scenario:health | profile:scenario:validate | profile:scenario:mixed)
    set -- profile "${command##*:}" "$@"
    ;;
  test:k6:smoke:health)
    set -- load smoke --endpoint health "$@"
    ;;
  test:k6:smoke)
    set -- load smoke "$@"
    ;;
  test:k6:load | test:k6:stress | test:k6:spike | test:k6:soak)
    set -- load "${command##*:}" "$@"
    ;;
  *)
    set -- "$command" "$@"
    ;;
esac
build_if_needed
exec "$binary" "$@"
