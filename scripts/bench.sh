#!/usr/bin/env bash
# Runs the load generator against a fresh Passgate built in release mode, on the services of
# scripts/services.sh (started if needed, with durable PostgreSQL settings). Arguments go to
# passgate-bench (e.g. --seconds 3 for a smoke run, --scenarios accept,e2e).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/services.sh up
# shellcheck disable=SC1091
source "${PASSGATE_SERVICES_DIR:-.services}/env"
cargo build --release --bins
export PASSGATE_BIN_DIR="$(pwd)/target/release"
exec target/release/passgate-bench "$@"
