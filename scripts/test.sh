#!/usr/bin/env bash
# Runs every Passgate test: starts PostgreSQL, RabbitMQ and an SMTP sink (installing them if
# needed, see scripts/services.sh), builds the binaries, then runs unit and integration tests
# against the real services. Extra arguments go to `cargo test` (e.g. a test name filter).
set -euo pipefail
cd "$(dirname "$0")/.."

export PASSGATE_PG_FAST="${PASSGATE_PG_FAST:-1}"
scripts/services.sh up
# shellcheck disable=SC1091
source "${PASSGATE_SERVICES_DIR:-.services}/env"

cargo build --workspace --bins
log="$(mktemp)"
trap 'rm -f "$log"' EXIT
status=0
cargo test --workspace --all-targets "$@" 2>&1 | tee "$log" || status=$?
# One closing line for the whole run.
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i; if ($(i+1) ~ /^ignored/) s += $i } }
     END { printf "tests: %d passed, %d failed, %d skipped\n", p, f, s }' "$log" | tee "${PASSGATE_TEST_SUMMARY:-/dev/null}"
exit "$status"
