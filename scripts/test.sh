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
cargo test --workspace "$@"
