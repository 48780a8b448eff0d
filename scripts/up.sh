#!/usr/bin/env bash
# Brings the whole Passgate system up on this machine, without Docker:
# PostgreSQL, RabbitMQ and an SMTP sink (scripts/services.sh), the binaries (cargo build),
# migrations, the broker topology, a demo app (credentials printed), the API and every worker
# role. Email goes to a file mailbox whose path is printed, so you can read the codes.
#
#   scripts/up.sh          start (idempotent: what runs is left running)
#   scripts/up.sh down     stop the API, the workers and the services
#
# Set PASSGATE_PROFILE=release for an optimised build.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$(pwd)"
DIR="${PASSGATE_SERVICES_DIR:-$ROOT/.services}"
PROFILE="${PASSGATE_PROFILE:-debug}"
API_PORT="${PASSGATE_API_PORT:-8080}"
WORKERS_PORT="${PASSGATE_WORKERS_PORT:-9090}"

stop_proc() {
    local pidfile="$DIR/$1.pid"
    if [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then
        kill -TERM "$(cat "$pidfile")" 2>/dev/null || true
        for _ in $(seq 1 50); do kill -0 "$(cat "$pidfile")" 2>/dev/null || break; sleep 0.2; done
    fi
    rm -f "$pidfile"
}

if [ "${1:-}" = "down" ]; then
    stop_proc passgate-api
    stop_proc passgate-workers
    scripts/services.sh down
    exit 0
fi

scripts/services.sh up
# shellcheck disable=SC1091
source "$DIR/env"

if [ "$PROFILE" = release ]; then cargo build --release --bins; else cargo build --bins; fi
BIN="$ROOT/target/$PROFILE"

# Keys are made once and kept with the services.
if [ ! -f "$DIR/keys.env" ]; then
    "$BIN/passgate" gen-keys | sed 's/^/export /' >"$DIR/keys.env"
    chmod 600 "$DIR/keys.env"
fi
# shellcheck disable=SC1091
source "$DIR/keys.env"

MAILBOX="$DIR/mailbox"
mkdir -p "$MAILBOX" "$DIR/logs"
cat >"$DIR/passgate.env" <<ENV
export PASSGATE_DATABASE_URL='$PASSGATE_DATABASE_URL'
export PASSGATE_AMQP_URL='$PASSGATE_AMQP_URL'
export PASSGATE_API_BIND=127.0.0.1:$API_PORT
export PASSGATE_WORKERS_BIND=127.0.0.1:$WORKERS_PORT
export PASSGATE_ISSUER=http://127.0.0.1:$API_PORT
export PASSGATE_MAILBOX_DIR='$MAILBOX'
export PASSGATE_SMS_OUTBOX_DIR='$DIR/sms-outbox'
export PASSGATE_CLIENT_KEY='$PASSGATE_CLIENT_KEY'
export PASSGATE_TRANSPORT_KEY='$PASSGATE_TRANSPORT_KEY'
export PASSGATE_DATA_KEY='$PASSGATE_DATA_KEY'
ENV
# Development mode: no SMTP relay and no SMS provider; messages go to directories.
unset PASSGATE_SMTP_URL PASSGATE_TWILIO_ACCOUNT_SID
# shellcheck disable=SC1091
source "$DIR/passgate.env"

"$BIN/passgate" migrate
"$BIN/passgate" topology

if [ ! -f "$DIR/demo-app.json" ]; then
    "$BIN/passgate" app create --name "Demo" --json >"$DIR/demo-app.json"
    chmod 600 "$DIR/demo-app.json"
fi
CLIENT_ID=$(sed -E 's/.*"client_id":"([^"]+)".*/\1/' "$DIR/demo-app.json")
CLIENT_SECRET=$(sed -E 's/.*"client_secret":"([^"]+)".*/\1/' "$DIR/demo-app.json")

start_proc() {
    local name=$1 port=$2
    if [ -f "$DIR/$name.pid" ] && kill -0 "$(cat "$DIR/$name.pid")" 2>/dev/null; then
        return
    fi
    nohup "$BIN/$name" >"$DIR/logs/$name.log" 2>&1 &
    echo $! >"$DIR/$name.pid"
    for _ in $(seq 1 100); do
        if curl -fsS "http://127.0.0.1:$port/readyz" >/dev/null 2>&1; then return; fi
        kill -0 "$(cat "$DIR/$name.pid")" 2>/dev/null || { tail -n 20 "$DIR/logs/$name.log"; exit 1; }
        sleep 0.2
    done
    echo "$name did not become ready; see $DIR/logs/$name.log" >&2
    exit 1
}
start_proc passgate-api "$API_PORT"
start_proc passgate-workers "$WORKERS_PORT"

API="http://127.0.0.1:$API_PORT"
cat <<MSG

Passgate is up.
  API          $API   (interactive docs: $API/docs, OpenAPI: $API/openapi.json)
  workers      http://127.0.0.1:$WORKERS_PORT/metrics (all roles)
  logs         $DIR/logs/
  mailbox      $MAILBOX   (every email the workers send, one .eml file each)
  sms outbox   $DIR/sms-outbox   (every text message, one file each)
  demo app     client_id=$CLIENT_ID
               client_secret=$CLIENT_SECRET

Send a first code:
  TOKEN=\$(curl -s $API/oidc/token -d grant_type=client_credentials \\
      -d client_id=$CLIENT_ID -d client_secret=$CLIENT_SECRET | sed -E 's/.*"access_token":"([^"]+)".*/\1/')
  curl -s $API/v1/auth/otp/send -H "Authorization: Bearer \$TOKEN" -H 'Content-Type: application/json' \\
      -d '{"channel":"email","identifier_type":"email","identifier":"alice@example.com","create_new_user":true}'
  grep -h 'code is' $MAILBOX/*.eml
  curl -s $API/v1/auth/otp/authenticate -H "Authorization: Bearer \$TOKEN" -H 'Content-Type: application/json' \\
      -d '{"identifier_type":"email","identifier":"alice@example.com","passcode":"<the code>"}'

Stop everything with: scripts/up.sh down
MSG
