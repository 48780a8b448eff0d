#!/usr/bin/env bash
# Fails when schema/src/schema.rs is not what `diesel print-schema` generates from migrations/
# (the file is generated, never edited by hand). Needs the services of scripts/services.sh up;
# installs diesel_cli (PostgreSQL only) when it is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck disable=SC1091
source "${PASSGATE_SERVICES_DIR:-.services}/env"
if ! command -v diesel >/dev/null 2>&1; then
    if ! dpkg -s libpq-dev >/dev/null 2>&1; then
        apt-get install -y -qq libpq-dev >/dev/null
    fi
    cargo install diesel_cli --no-default-features --features postgres --locked --quiet
fi
export PGOPTIONS="-c client_min_messages=warning"
db="schema_check_$$"
url="${PASSGATE_PG_ADMIN_URL%/*}/$db"
psql -q "$PASSGATE_PG_ADMIN_URL" -c "DROP DATABASE IF EXISTS $db" -c "CREATE DATABASE $db"
trap 'psql -q "$PASSGATE_PG_ADMIN_URL" -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1 || true' EXIT
diesel migration run --database-url "$url" --migration-dir migrations >/dev/null
generated=$(mktemp)
diesel print-schema --database-url "$url" >"$generated"
if ! diff -u schema/src/schema.rs "$generated"; then
    echo "schema/src/schema.rs is stale: regenerate it with diesel print-schema" >&2
    exit 1
fi
echo "schema.rs matches the migrations"
