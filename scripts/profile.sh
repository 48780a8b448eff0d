#!/usr/bin/env bash
# Profiles every process on the machine with perf while passgate-bench runs, and prints where
# the CPU went: per process, then the hottest functions of PostgreSQL, RabbitMQ (beam) and the
# Passgate processes. Arguments go to passgate-bench (default: the accept scenario, 20 s).
#
#   scripts/profile.sh                                  # accept + the drain that follows
#   scripts/profile.sh --scenarios e2e --rate 400       # another scenario
#
# PASSGATE_PROFILE_DELAY (s, default 5) waits before recording; PASSGATE_PROFILE_SECS (default
# 10) is how long perf records. perf.data stays in target/profile/ for `perf report`.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v perf >/dev/null; then
  echo "perf is needed (Debian: apt-get install linux-perf)" >&2
  exit 1
fi
scripts/services.sh up
# shellcheck disable=SC1091
source "${PASSGATE_SERVICES_DIR:-.services}/env"
cargo build --release --bins
export PASSGATE_BIN_DIR="$(pwd)/target/release"
out=target/profile
mkdir -p "$out"
args=("$@")
[ ${#args[@]} -eq 0 ] && args=(--scenarios accept --seconds 20)
target/release/passgate-bench "${args[@]}" &
bench=$!
sleep "${PASSGATE_PROFILE_DELAY:-5}"
perf record -a -F 499 -o "$out/perf.data" -- sleep "${PASSGATE_PROFILE_SECS:-10}" 2>/dev/null
wait "$bench"
# The reports are cut with head: no pipefail from here on (head closes the pipe early).
set +o pipefail
report() {
  perf report -i "$out/perf.data" --stdio "$@" </dev/null 2>/dev/null | grep -v '^#' | grep -v '^$' || true
}
echo "== CPU samples per thread name and binary (tokio-rt-worker threads are Passgate's and the load generator's)"
report --sort comm,dso | head -20
echo "== hottest functions: PostgreSQL"
report --comm postgres --sort dso,sym | head -20
echo "== hottest functions: the Tokio threads (API, workers, load generator)"
report --comm tokio-rt-worker --sort dso,sym | head -20
