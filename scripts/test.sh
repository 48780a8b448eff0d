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

# Each test gets its own database and RabbitMQ virtual host; drop those of earlier runs so they
# do not pile up (a broker with hundreds of vhosts restarts slowly). Best effort: housekeeping
# never fails the run (a broker that has just started may not answer its API yet).
/usr/bin/python3 - <<'PY' || echo "[test] could not clean up earlier test vhosts; continuing"
import base64, json, os, sys, urllib.parse, urllib.request
url = urllib.parse.urlsplit(os.environ["PASSGATE_RABBIT_MGMT_URL"])
auth = base64.b64encode(f"{url.username}:{url.password}".encode()).decode()
base = f"http://{url.hostname}:{url.port}"
def call(method, path):
    req = urllib.request.Request(base + path, method=method, headers={"Authorization": "Basic " + auth})
    with urllib.request.urlopen(req, timeout=30) as r:
        return r.read()
try:
    for vhost in json.loads(call("GET", "/api/vhosts")):
        if vhost["name"].startswith("v_"):
            call("DELETE", "/api/vhosts/" + urllib.parse.quote(vhost["name"], safe=""))
except Exception as e:  # housekeeping only
    print(f"[test] vhost clean-up skipped: {e}", file=sys.stderr)
PY
psql -q -t -A "$PASSGATE_PG_ADMIN_URL" -c "SELECT datname FROM pg_database WHERE datname LIKE 't\_%'" \
    | while read -r db; do psql -q "$PASSGATE_PG_ADMIN_URL" -c "DROP DATABASE IF EXISTS \"$db\" WITH (FORCE)" || true; done \
    || echo "[test] could not clean up earlier test databases; continuing"

cargo build --workspace --bins
log="$(mktemp)"
trap 'rm -f "$log"' EXIT
status=0
cargo test --workspace --all-targets "$@" 2>&1 | tee "$log" || status=$?
# One closing line for the whole run.
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i; if ($(i+1) ~ /^ignored/) s += $i } }
     END { printf "tests: %d passed, %d failed, %d skipped\n", p, f, s }' "$log" | tee "${PASSGATE_TEST_SUMMARY:-/dev/null}"
exit "$status"
