#!/usr/bin/env bash
# Local backing services for Passgate, without Docker: PostgreSQL, RabbitMQ (with the
# management plugin) and an SMTP sink, from Debian packages, on loopback, on non-default
# ports, in a throwaway directory.
#
#   scripts/services.sh up|down|status|env|restart-rabbitmq|stop-rabbitmq|start-rabbitmq|restart-postgres
#
# Environment (all optional):
#   PASSGATE_SERVICES_DIR      where everything lives (default: <repo>/.services)
#   PASSGATE_PG_PORT           PostgreSQL                 (default 54329)
#   PASSGATE_AMQP_PORT         RabbitMQ AMQP              (default 56729)
#   PASSGATE_RABBIT_MGMT_PORT  RabbitMQ management HTTP   (default 15679)
#   PASSGATE_RABBIT_DIST_PORT  Erlang distribution        (default 25679)
#   PASSGATE_EPMD_PORT         private epmd               (default 43699)
#   PASSGATE_SMTP_PORT         SMTP sink                  (default 25259)
#   PASSGATE_PG_FAST=1         start PostgreSQL with fsync/synchronous_commit/full_page_writes off
#                              (tests only; never for durability claims)
#
# After `up`, `source "$PASSGATE_SERVICES_DIR/env"` (or `eval "$(scripts/services.sh env)"`).
# Mail received by the SMTP sink is stored as a Maildir: one file per message in <dir>/mail/new/.
# Needs root (it installs packages and runs PostgreSQL as the postgres user).
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_DIR="$(cd "$SCRIPT_DIR/.." && pwd)"

DIR="${PASSGATE_SERVICES_DIR:-$REPO_DIR/.services}"
case "$DIR" in /*) ;; *) DIR="$(pwd)/$DIR" ;; esac
DIR="${DIR%/}"
PG_PORT="${PASSGATE_PG_PORT:-54329}"
AMQP_PORT="${PASSGATE_AMQP_PORT:-56729}"
MGMT_PORT="${PASSGATE_RABBIT_MGMT_PORT:-15679}"
DIST_PORT="${PASSGATE_RABBIT_DIST_PORT:-25679}"
EPMD_PORT="${PASSGATE_EPMD_PORT:-43699}"
SMTP_PORT="${PASSGATE_SMTP_PORT:-25259}"
PG_FAST="${PASSGATE_PG_FAST:-0}"

READY_TIMEOUT=90            # seconds to wait for any one service
RABBIT_BIN=/usr/lib/rabbitmq/bin
SYS_PYTHON=/usr/bin/python3
NODENAME="passgate-${AMQP_PORT}@localhost"

# ---------------------------------------------------------------------------- helpers

log() { printf '[services] %s\n' "$*" >&2; }
die() { printf '[services] error: %s\n' "$*" >&2; exit 1; }

usage() {
    awk 'NR == 1 { next } /^#/ { sub(/^# ?/, ""); print; next } { exit }' "${BASH_SOURCE[0]}"
}

now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }

# True when something accepts TCP connections on 127.0.0.1:$1.
port_open() {
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# Who listens on 127.0.0.1:$1 (best effort, for error messages).
port_owner() {
    if command -v ss >/dev/null 2>&1; then
        ss -Hltnp "sport = :$1" 2>/dev/null | sed -n 's/.*users:((\(.*\)))/\1/p' | head -1
    fi
}

# pid_alive PID [PATTERN]: the process exists (and its command line contains PATTERN).
pid_alive() {
    local pid="$1" pattern="${2:-}"
    [[ "$pid" =~ ^[0-9]+$ ]] || return 1
    kill -0 "$pid" 2>/dev/null || return 1
    [ -r "/proc/$pid/cmdline" ] || return 1
    # a zombie is not alive
    if [ "$(awk '{ print $3 }' "/proc/$pid/stat" 2>/dev/null)" = "Z" ]; then return 1; fi
    [ -z "$pattern" ] && return 0
    local cmdline
    cmdline="$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null)" || return 1
    [[ "$cmdline" == *"$pattern"* ]]
}

# Wait (up to $2 seconds) until PID $1 has fully disappeared, zombie included: a killed
# process may linger as a zombie until PID 1 reaps it, and PostgreSQL refuses to start
# while the pid in its lock files still answers kill -0.
wait_pid_gone() {
    local pid="$1" i
    [[ "$pid" =~ ^[0-9]+$ ]] || return 0
    for ((i = 0; i < ${2:-10} * 10; i++)); do
        kill -0 "$pid" 2>/dev/null || return 0
        sleep 0.1
    done
    return 1
}

read_pid() { [ -f "$1" ] && tr -dc '0-9' <"$1" || true; }

tail_log() {
    local f
    for f in "$@"; do
        if [ -f "$f" ]; then
            printf -- '----- last lines of %s -----\n' "$f" >&2
            tail -n 25 "$f" >&2 || true
        fi
    done
}

require_root() {
    if [ "$(id -u)" -ne 0 ]; then
        die "must run as root (it installs Debian packages and runs PostgreSQL via 'runuser -u postgres'); try: sudo $0 $*"
    fi
}

check_ports() {
    local p
    for p in "$PG_PORT" "$AMQP_PORT" "$MGMT_PORT" "$DIST_PORT" "$EPMD_PORT" "$SMTP_PORT"; do
        [[ "$p" =~ ^[0-9]+$ ]] && [ "$p" -ge 1 ] && [ "$p" -le 65535 ] || die "invalid port number: '$p'"
    done
}

pg_bindir() {
    local d
    d="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)"
    [ -n "$d" ] && [ -x "$d/initdb" ] && printf '%s\n' "$d"
}

# ---------------------------------------------------------------------------- install

ensure_installed() {
    local missing=()
    [ -n "$(pg_bindir || true)" ] || missing+=(postgresql)
    [ -x "$RABBIT_BIN/rabbitmq-server" ] && command -v epmd >/dev/null 2>&1 || missing+=(rabbitmq-server)
    [ -x "$SYS_PYTHON" ] && [ -f /usr/lib/python3/dist-packages/aiosmtpd/__init__.py ] || missing+=(python3-aiosmtpd)
    [ ${#missing[@]} -eq 0 ] && return 0
    command -v apt-get >/dev/null 2>&1 || die "missing ${missing[*]} and apt-get is not available (Debian 12 expected)"
    log "installing ${missing[*]} (apt-get) ..."
    local t0; t0="$(now)"
    export DEBIAN_FRONTEND=noninteractive
    apt-get -o DPkg::Lock::Timeout=300 update -q >"$LOG_DIR/apt.log" 2>&1 || { tail_log "$LOG_DIR/apt.log"; die "apt-get update failed"; }
    # Installing rabbitmq-server (and postgresql) tries to start the system services; where that is
    # refused (no systemd, policy-rc.d) it is harmless: we never use the system instances.
    # Only what is missing, so an up-to-date machine is not upgraded behind the user's back.
    apt-get -o DPkg::Lock::Timeout=300 install -y -q "${missing[@]}" >>"$LOG_DIR/apt.log" 2>&1 \
        || { tail_log "$LOG_DIR/apt.log"; die "apt-get install failed"; }
    [ -n "$(pg_bindir || true)" ] || die "postgresql installed but no /usr/lib/postgresql/*/bin/initdb found"
    [ -x "$RABBIT_BIN/rabbitmq-server" ] || die "rabbitmq-server installed but $RABBIT_BIN/rabbitmq-server not found"
    log "installed in $(elapsed "$t0")s"
}

# ---------------------------------------------------------------------------- layout

# PostgreSQL lives in $DIR/pg, unless user postgres cannot reach $DIR (e.g. a checkout under
# /root or in a mode-700 temporary directory): then $DIR/pg is a symlink to a directory in /tmp.
PG_LINK="$DIR/pg"
PG_DIR="$PG_LINK"
PG_DATA="$PG_DIR/data"
PG_LOG="$DIR/logs/postgres.log"
RMQ_DIR="$DIR/rabbitmq"
MAIL_DIR="$DIR/mail"
LOG_DIR="$DIR/logs"
SMTP_PID_FILE="$DIR/smtp.pid"
RMQ_PID_FILE="$RMQ_DIR/rabbitmq-${AMQP_PORT}.pid"
RMQ_READY_FILE="$RMQ_DIR/ready-${AMQP_PORT}"
ENV_FILE="$DIR/env"

resolve_pg_dir() {
    if [ -L "$PG_LINK" ]; then
        PG_DIR="$(readlink "$PG_LINK")"
        PG_LOG="$PG_DIR/postgres.log"
    fi
    PG_DATA="$PG_DIR/data"
}

prepare_dir() {
    mkdir -p "$DIR" "$LOG_DIR" "$MAIL_DIR"/{cur,new,tmp} "$RMQ_DIR"
    if [ ! -L "$PG_LINK" ] && [ ! -d "$PG_LINK" ]; then
        if runuser -u postgres -- test -x "$DIR"; then
            mkdir -p "$PG_LINK"
        else
            local target
            target="/tmp/passgate-pg-$(printf '%s' "$DIR" | md5sum | cut -c1-12)"
            # a new services dir never inherits data left by an earlier one of the same path
            if [ -d "$target" ] && ! pid_alive "$(head -n 1 "$target/data/postmaster.pid" 2>/dev/null || true)" postgres; then
                rm -rf "$target"
            fi
            mkdir -p "$target"
            ln -s "$target" "$PG_LINK"
            log "postgres: user postgres cannot reach $DIR; PostgreSQL files live in $target (symlinked from $PG_LINK)"
        fi
    fi
    resolve_pg_dir
    if [ "$PG_LOG" != "$LOG_DIR/postgres.log" ] && [ ! -e "$LOG_DIR/postgres.log" ]; then
        ln -s "$PG_LOG" "$LOG_DIR/postgres.log"
    fi
}

# ---------------------------------------------------------------------------- PostgreSQL

PG_BIN=""

pg_as() { runuser -u postgres -- "$@"; }

pg_pid() { [ -f "$PG_DATA/postmaster.pid" ] && head -n 1 "$PG_DATA/postmaster.pid" | tr -dc '0-9' || true; }

# The postmaster named in postmaster.pid is alive (not a zombie) and is a postgres.
pg_running() {
    local pid; pid="$(pg_pid)"
    [ -n "$pid" ] && pid_alive "$pid" postgres
}

pg_ready() {
    "$PG_BIN/pg_isready" -q -h 127.0.0.1 -p "$PG_PORT" -U postgres -d postgres -t 2 >/dev/null 2>&1
}

pg_write_conf() {
    local sockdir="${PG_DIR//\'/\'\'}"
    {
        echo "# written by scripts/services.sh at each start; edit the script, not this file"
        echo "port = $PG_PORT"
        echo "listen_addresses = '127.0.0.1'"
        echo "unix_socket_directories = '$sockdir'"
        echo "max_connections = 300"
        if [ "$PG_FAST" = "1" ]; then
            echo "fsync = off"
            echo "synchronous_commit = off"
            echo "full_page_writes = off"
        fi
    } >"$PG_DATA/passgate.conf"
    chown postgres: "$PG_DATA/passgate.conf"
}

start_postgres() {
    local t0; t0="$(now)"
    chown postgres: "$PG_DIR"
    if ! pg_as test -w "$PG_DIR"; then
        die "user postgres cannot write $PG_DIR (a parent directory is not traversable by other users?); set PASSGATE_SERVICES_DIR to a path under e.g. /tmp"
    fi
    if [ -d "$PG_DATA" ] && [ "$(stat -c %U "$PG_DATA")" != postgres ]; then
        chown -R postgres: "$PG_DATA"
    fi
    if [ ${#PG_DIR} -gt 90 ]; then
        die "services dir path too long for a PostgreSQL Unix socket ($PG_DIR); use a shorter PASSGATE_SERVICES_DIR"
    fi

    if pg_running; then
        if pg_ready; then
            log "postgres: already running on 127.0.0.1:$PG_PORT"
            return 0
        fi
        log "postgres: running (pid $(pg_pid)), waiting for it to accept connections"
        local deadline=$((SECONDS + READY_TIMEOUT))
        while pg_running && ! pg_ready && [ $SECONDS -lt $deadline ]; do sleep 0.1; done
        if pg_ready; then
            log "postgres: ready on 127.0.0.1:$PG_PORT ($(elapsed "$t0")s)"
            pg_create_db
            return 0
        fi
        if pg_running; then
            tail_log "$PG_LOG"
            die "postgres (pid $(pg_pid)) did not accept connections on 127.0.0.1:$PG_PORT within ${READY_TIMEOUT}s"
        fi
        log "postgres: pid $(pg_pid) exited; starting it again"
    fi
    if ! pg_running; then
        # stale lock file from a postmaster that died: let its zombie be reaped first
        if [ -n "$(pg_pid)" ]; then
            wait_pid_gone "$(pg_pid)" 15 || log "postgres: WARNING: old postmaster pid $(pg_pid) still not reaped"
            rm -f "$PG_DATA/postmaster.pid"
        fi
        if port_open "$PG_PORT"; then
            log "postgres: WARNING: 127.0.0.1:$PG_PORT already answers but was not started from $DIR ($(port_owner "$PG_PORT")); leaving it alone"
            return 0
        fi
        if [ ! -s "$PG_DATA/PG_VERSION" ]; then
            rm -rf "$PG_DATA"
            pg_as mkdir -p "$PG_DATA"
            log "postgres: initdb $PG_DATA"
            pg_as "$PG_BIN/initdb" -D "$PG_DATA" -U postgres --auth=trust -E UTF8 --locale=C.UTF-8 \
                >"$LOG_DIR/initdb.log" 2>&1 || { tail_log "$LOG_DIR/initdb.log"; die "initdb failed"; }
            echo "include_if_exists = 'passgate.conf'" >>"$PG_DATA/postgresql.conf"
        fi
        pg_write_conf
        touch "$PG_LOG"
        chown postgres: "$PG_LOG"
        pg_as "$PG_BIN/pg_ctl" -D "$PG_DATA" -l "$PG_LOG" -w -t "$READY_TIMEOUT" start \
            >>"$LOG_DIR/pg_ctl.log" 2>&1 9>&- || { tail_log "$LOG_DIR/pg_ctl.log" "$PG_LOG"; die "pg_ctl start failed"; }
    fi

    local deadline=$((SECONDS + READY_TIMEOUT))
    until pg_ready; do
        if [ $SECONDS -ge $deadline ]; then
            tail_log "$PG_LOG"
            die "postgres did not accept connections on 127.0.0.1:$PG_PORT within ${READY_TIMEOUT}s"
        fi
        sleep 0.1
    done

    pg_create_db
    log "postgres: ready on 127.0.0.1:$PG_PORT ($(elapsed "$t0")s)"
}

pg_create_db() {
    local exists
    exists="$("$PG_BIN/psql" -h 127.0.0.1 -p "$PG_PORT" -U postgres -d postgres -XtAqc \
        "SELECT 1 FROM pg_database WHERE datname = 'passgate'")" || die "cannot query postgres on port $PG_PORT"
    if [ "$exists" != "1" ]; then
        "$PG_BIN/psql" -h 127.0.0.1 -p "$PG_PORT" -U postgres -d postgres -XqAc "CREATE DATABASE passgate" >/dev/null \
            || die "cannot create database passgate"
        log "postgres: created database passgate"
    fi
}

stop_postgres() {
    if pg_running; then
        pg_as "$PG_BIN/pg_ctl" -D "$PG_DATA" -m fast -w -t 60 stop >>"$LOG_DIR/pg_ctl.log" 2>&1 \
            || { tail_log "$LOG_DIR/pg_ctl.log"; die "pg_ctl stop failed"; }
        log "postgres: stopped"
    else
        rm -f "$PG_DATA/postmaster.pid" 2>/dev/null || true
        if port_open "$PG_PORT"; then
            log "postgres: WARNING: not running from $DIR, but 127.0.0.1:$PG_PORT answers ($(port_owner "$PG_PORT")); not touching it"
        else
            log "postgres: not running"
        fi
    fi
}

# ---------------------------------------------------------------------------- RabbitMQ

# Everything RabbitMQ and its CLI tools read, pointed into $RMQ_DIR (call in a subshell).
rabbit_env() {
    export HOME="$RMQ_DIR/home"                  # the Erlang cookie lives here
    export RABBITMQ_NODENAME="$NODENAME"
    export RABBITMQ_NODE_IP_ADDRESS=127.0.0.1
    export RABBITMQ_NODE_PORT="$AMQP_PORT"
    export RABBITMQ_DIST_PORT="$DIST_PORT"       # default is AMQP port + 20000: overflows for high ports
    export ERL_EPMD_PORT="$EPMD_PORT"            # a private epmd ...
    export ERL_EPMD_ADDRESS=127.0.0.1            # ... on loopback only
    export RABBITMQ_CONFIG_FILE="$RMQ_DIR/rabbitmq-${AMQP_PORT}.conf"
    export RABBITMQ_CONF_ENV_FILE="$RMQ_DIR/rabbitmq-env.conf"   # empty: /etc/rabbitmq is ignored
    export RABBITMQ_ADVANCED_CONFIG_FILE="$RMQ_DIR/advanced.config"
    export RABBITMQ_ENABLED_PLUGINS_FILE="$RMQ_DIR/enabled_plugins"
    export RABBITMQ_MNESIA_BASE="$RMQ_DIR/mnesia"
    export RABBITMQ_LOG_BASE="$LOG_DIR/rabbitmq"
    export RABBITMQ_PID_FILE="$RMQ_PID_FILE"
    # keep the Erlang distribution listeners (server and CLI) on loopback too; schedulers
    # that sleep when idle instead of spinning (+sbwt none ...): on a host shared with
    # PostgreSQL and Passgate, busy-waiting schedulers take CPU the others need
    export RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1} +sbwt none +sbwtdcpu none +sbwtdio none"
    export RABBITMQ_CTL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1}"
    unset RABBITMQ_ENV_LOADED
}

rabbitmqctl() { ( rabbit_env; exec "$RABBIT_BIN/rabbitmqctl" "$@" 9>&- ); }

rabbit_pid() { read_pid "$RMQ_PID_FILE"; }

# The pid in our pid file is a live beam.smp started with our pid file (the nodename and
# all paths reach RabbitMQ through the environment, not the command line).
rabbit_alive() {
    local pid; pid="$(rabbit_pid)"
    [ -n "$pid" ] && pid_alive "$pid" beam \
        && grep -qzxF "RABBITMQ_PID_FILE=$RMQ_PID_FILE" "/proc/$pid/environ" 2>/dev/null
}

rabbit_write_config() {
    mkdir -p "$RMQ_DIR/home" "$RMQ_DIR/mnesia" "$LOG_DIR/rabbitmq"
    chmod 700 "$RMQ_DIR/home"
    if [ ! -s "$RMQ_DIR/home/.erlang.cookie" ]; then
        (umask 077; od -An -N16 -tx1 /dev/urandom | tr -d ' \n' | tr '0-9a-f' 'A-P' >"$RMQ_DIR/home/.erlang.cookie")
        chmod 400 "$RMQ_DIR/home/.erlang.cookie"
    fi
    : >"$RMQ_DIR/rabbitmq-env.conf"
    echo '[].' >"$RMQ_DIR/advanced.config"
    # The same file `rabbitmq-plugins enable --offline rabbitmq_management` writes (only the
    # explicitly enabled plugins are listed); written directly, which saves an Erlang VM start.
    # The Prometheus plugin is deliberately not enabled (it would bind 0.0.0.0:15692).
    echo '[rabbitmq_management].' >"$RMQ_DIR/enabled_plugins"
    cat >"$RMQ_DIR/rabbitmq-${AMQP_PORT}.conf" <<EOF
# written by scripts/services.sh at each start
listeners.tcp.1 = 127.0.0.1:$AMQP_PORT
management.tcp.ip = 127.0.0.1
management.tcp.port = $MGMT_PORT
loopback_users = none
EOF
}

# rabbit_wait_ready LAUNCHER_PID: AMQP port open, then `rabbitmqctl await_startup`, then mgmt port.
rabbit_wait_ready() {
    local launcher="${1:-}" deadline=$((SECONDS + READY_TIMEOUT))
    until port_open "$AMQP_PORT"; do
        if [ $SECONDS -ge $deadline ]; then
            tail_log "$LOG_DIR/rabbitmq.out.log" "$LOG_DIR/rabbitmq/$NODENAME.log"
            die "rabbitmq did not open 127.0.0.1:$AMQP_PORT within ${READY_TIMEOUT}s"
        fi
        if [ -n "$launcher" ] && ! pid_alive "$launcher" && ! rabbit_alive; then
            tail_log "$LOG_DIR/rabbitmq.out.log" "$LOG_DIR/rabbitmq/$NODENAME.log"
            die "rabbitmq exited during start-up"
        fi
        sleep 0.2
    done
    rabbitmqctl await_startup --timeout "$READY_TIMEOUT" >>"$LOG_DIR/rabbitmqctl.log" 2>&1 \
        || { tail_log "$LOG_DIR/rabbitmqctl.log" "$LOG_DIR/rabbitmq/$NODENAME.log"; die "rabbitmqctl await_startup failed"; }
    until port_open "$MGMT_PORT"; do
        if [ $SECONDS -ge $deadline ]; then
            tail_log "$LOG_DIR/rabbitmq/$NODENAME.log"
            die "rabbitmq management did not open 127.0.0.1:$MGMT_PORT within ${READY_TIMEOUT}s"
        fi
        sleep 0.2
    done
    rabbit_pid >"$RMQ_READY_FILE"
}

start_rabbitmq() {
    local t0; t0="$(now)"
    if rabbit_alive; then
        # Already verified ready (await_startup passed) for this very process: skip the CLI.
        if [ "$(read_pid "$RMQ_READY_FILE")" = "$(rabbit_pid)" ] && port_open "$AMQP_PORT" && port_open "$MGMT_PORT"; then
            log "rabbitmq: already running on 127.0.0.1:$AMQP_PORT (node $NODENAME)"
            return 0
        fi
        log "rabbitmq: running (pid $(rabbit_pid)), waiting until it is ready"
        rabbit_wait_ready ""
        log "rabbitmq: ready on 127.0.0.1:$AMQP_PORT ($(elapsed "$t0")s)"
        return 0
    fi
    local launcher; launcher="$(read_pid "$RMQ_DIR/launcher.pid")"
    if [ -n "$launcher" ] && pid_alive "$launcher" rabbitmq-server \
        && grep -qzxF "RABBITMQ_PID_FILE=$RMQ_PID_FILE" "/proc/$launcher/environ" 2>/dev/null; then
        log "rabbitmq: still starting (launcher pid $launcher), waiting until it is ready"
        rabbit_wait_ready "$launcher"
        log "rabbitmq: ready on 127.0.0.1:$AMQP_PORT ($(elapsed "$t0")s)"
        return 0
    fi
    rm -f "$RMQ_PID_FILE" "$RMQ_READY_FILE"
    if port_open "$AMQP_PORT"; then
        log "rabbitmq: WARNING: 127.0.0.1:$AMQP_PORT already answers but was not started from $DIR ($(port_owner "$AMQP_PORT")); leaving it alone"
        return 0
    fi
    local p
    for p in "$MGMT_PORT" "$DIST_PORT"; do
        if port_open "$p"; then
            die "rabbitmq: port 127.0.0.1:$p is already in use ($(port_owner "$p")); stop it or choose other PASSGATE_*_PORT values"
        fi
    done
    rabbit_write_config
    # Run the real server script as root (the /usr/sbin wrapper switches user and writes under /var).
    # setsid: own session, so a Ctrl-C in the caller's terminal does not reach it.
    (
        rabbit_env
        exec setsid "$RABBIT_BIN/rabbitmq-server" </dev/null >>"$LOG_DIR/rabbitmq.out.log" 2>&1 9>&-
    ) &
    launcher=$!
    echo "$launcher" >"$RMQ_DIR/launcher.pid"
    rabbit_wait_ready "$launcher"
    log "rabbitmq: ready on 127.0.0.1:$AMQP_PORT, management http://127.0.0.1:$MGMT_PORT ($(elapsed "$t0")s)"
}

stop_rabbitmq() {
    local t0; t0="$(now)"
    local pid; pid="$(rabbit_pid)"
    if rabbit_alive; then
        if ! rabbitmqctl shutdown --timeout 60 >>"$LOG_DIR/rabbitmqctl.log" 2>&1; then
            log "rabbitmq: 'rabbitmqctl shutdown' failed; sending SIGTERM to $pid"
            kill -TERM "$pid" 2>/dev/null || true
        fi
        local deadline=$((SECONDS + 60))
        while pid_alive "$pid"; do
            if [ $SECONDS -ge $deadline ]; then
                log "rabbitmq: still alive after 60s; SIGKILL"
                kill -KILL "$pid" 2>/dev/null || true
                sleep 0.5
                break
            fi
            sleep 0.2
        done
        log "rabbitmq: stopped ($(elapsed "$t0")s)"
    else
        if port_open "$AMQP_PORT"; then
            log "rabbitmq: WARNING: not running from $DIR, but 127.0.0.1:$AMQP_PORT answers ($(port_owner "$AMQP_PORT")); not touching it"
        else
            log "rabbitmq: not running"
        fi
    fi
    rm -f "$RMQ_PID_FILE" "$RMQ_READY_FILE"
    local launcher; launcher="$(read_pid "$RMQ_DIR/launcher.pid")"
    if [ -n "$launcher" ] && pid_alive "$launcher" "rabbitmq-server"; then
        kill -TERM "$launcher" 2>/dev/null || true
    fi
    rm -f "$RMQ_DIR/launcher.pid"
    # the private epmd (it refuses while a node is still registered, which is what we want)
    if command -v epmd >/dev/null 2>&1; then
        ERL_EPMD_PORT="$EPMD_PORT" epmd -port "$EPMD_PORT" -kill >/dev/null 2>&1 || true
    fi
}

# ---------------------------------------------------------------------------- SMTP sink

smtp_pattern() { printf 'aiosmtpd -n -l 127.0.0.1:%s' "$SMTP_PORT"; }

smtp_alive() {
    local pid; pid="$(read_pid "$SMTP_PID_FILE")"
    [ -n "$pid" ] && pid_alive "$pid" "$(smtp_pattern)"
}

start_smtp() {
    local t0; t0="$(now)"
    if smtp_alive && port_open "$SMTP_PORT"; then
        log "smtp: already running on 127.0.0.1:$SMTP_PORT"
        return 0
    elif smtp_alive; then
        log "smtp: running (pid $(read_pid "$SMTP_PID_FILE")), waiting for its port"
    else
        rm -f "$SMTP_PID_FILE"
        if port_open "$SMTP_PORT"; then
            log "smtp: WARNING: 127.0.0.1:$SMTP_PORT already answers but was not started from $DIR ($(port_owner "$SMTP_PORT")); leaving it alone"
            return 0
        fi
        # aiosmtpd's Mailbox handler stores each message in a Maildir: $MAIL_DIR/new/<id>
        setsid "$SYS_PYTHON" -m aiosmtpd -n -l "127.0.0.1:$SMTP_PORT" -c aiosmtpd.handlers.Mailbox "$MAIL_DIR" \
            </dev/null >>"$LOG_DIR/smtp.log" 2>&1 9>&- &
        echo $! >"$SMTP_PID_FILE"
    fi
    local deadline=$((SECONDS + READY_TIMEOUT))
    until port_open "$SMTP_PORT"; do
        if [ $SECONDS -ge $deadline ]; then
            tail_log "$LOG_DIR/smtp.log"
            die "smtp did not open 127.0.0.1:$SMTP_PORT within ${READY_TIMEOUT}s"
        fi
        if ! smtp_alive; then
            tail_log "$LOG_DIR/smtp.log"
            die "smtp sink exited during start-up"
        fi
        sleep 0.1
    done
    log "smtp: ready on 127.0.0.1:$SMTP_PORT, Maildir $MAIL_DIR ($(elapsed "$t0")s)"
}

stop_smtp() {
    local pid; pid="$(read_pid "$SMTP_PID_FILE")"
    if smtp_alive; then
        kill -TERM "$pid" 2>/dev/null || true
        local i
        for i in $(seq 1 50); do pid_alive "$pid" || break; sleep 0.1; done
        pid_alive "$pid" && kill -KILL "$pid" 2>/dev/null || true
        log "smtp: stopped"
    elif port_open "$SMTP_PORT"; then
        log "smtp: WARNING: not running from $DIR, but 127.0.0.1:$SMTP_PORT answers ($(port_owner "$SMTP_PORT")); not touching it"
    else
        log "smtp: not running"
    fi
    rm -f "$SMTP_PID_FILE"
}

# ---------------------------------------------------------------------------- env file

write_env() {
    local tmp="$ENV_FILE.tmp.$$"
    {
        printf 'export %s=%q\n' \
            PASSGATE_DATABASE_URL "postgres://postgres@127.0.0.1:$PG_PORT/passgate" \
            PASSGATE_PG_ADMIN_URL "postgres://postgres@127.0.0.1:$PG_PORT/postgres" \
            PASSGATE_AMQP_URL "amqp://guest:guest@127.0.0.1:$AMQP_PORT/%2f" \
            PASSGATE_RABBIT_MGMT_URL "http://guest:guest@127.0.0.1:$MGMT_PORT" \
            PASSGATE_SMTP_URL "smtp://127.0.0.1:$SMTP_PORT" \
            PASSGATE_SMTP_MAILDIR "$MAIL_DIR" \
            PASSGATE_SERVICES_DIR "$DIR"
    } >"$tmp"
    mv -f "$tmp" "$ENV_FILE"
}

# ---------------------------------------------------------------------------- commands

# Run the given start/stop functions in parallel; fail if any failed.
run_parallel() {
    local pids=() names=() f i rc=0
    for f in "$@"; do
        "$f" &
        pids+=($!)
        names+=("$f")
    done
    for i in "${!pids[@]}"; do
        if ! wait "${pids[$i]}"; then
            log "${names[$i]} failed"
            rc=1
        fi
    done
    return $rc
}

cmd_up() {
    local t0; t0="$(now)"
    ensure_installed
    PG_BIN="$(pg_bindir)"
    run_parallel start_postgres start_rabbitmq start_smtp || die "some services failed to start (logs in $LOG_DIR)"
    write_env
    cat <<EOF
Passgate services up in $(elapsed "$t0")s (dir $DIR)
  postgres  127.0.0.1:$PG_PORT  database passgate, user postgres, trust auth$( [ "$PG_FAST" = 1 ] && echo ", fsync off" )
  rabbitmq  amqp 127.0.0.1:$AMQP_PORT, management http://127.0.0.1:$MGMT_PORT (guest/guest), node $NODENAME
  smtp      127.0.0.1:$SMTP_PORT, messages in $MAIL_DIR/new/
  env       source $ENV_FILE
EOF
}

cmd_down() {
    local t0; t0="$(now)"
    PG_BIN="$(pg_bindir || true)"
    local fns=(stop_rabbitmq stop_smtp)
    [ -n "$PG_BIN" ] && fns=(stop_postgres "${fns[@]}")
    run_parallel "${fns[@]}" || die "some services failed to stop"
    echo "Passgate services down in $(elapsed "$t0")s (dir $DIR)"
}

cmd_status() {
    PG_BIN="$(pg_bindir || true)"
    local all=0 s
    if [ -n "$PG_BIN" ] && pg_ready; then
        if [ -f "$PG_DATA/postmaster.pid" ]; then s="up (pid $(head -1 "$PG_DATA/postmaster.pid"))"; else s="up (not started from this dir)"; fi
    else s="down"; all=1; fi
    printf '%-9s %-48s 127.0.0.1:%s\n' postgres "$s" "$PG_PORT"

    if rabbit_alive && port_open "$AMQP_PORT"; then
        s="up (pid $(rabbit_pid), node $NODENAME)"
        port_open "$MGMT_PORT" || s="$s, management DOWN"
    elif rabbit_alive; then s="starting (pid $(rabbit_pid))"; all=1
    elif port_open "$AMQP_PORT"; then s="up (not started from this dir)"
    else s="down"; all=1; fi
    printf '%-9s %-48s 127.0.0.1:%s (management %s)\n' rabbitmq "$s" "$AMQP_PORT" "$MGMT_PORT"

    if smtp_alive && port_open "$SMTP_PORT"; then s="up (pid $(read_pid "$SMTP_PID_FILE"))"
    elif port_open "$SMTP_PORT"; then s="up (not started from this dir)"
    else s="down"; all=1; fi
    printf '%-9s %-48s 127.0.0.1:%s\n' smtp "$s" "$SMTP_PORT"
    printf 'dir       %s\n' "$DIR"
    return $all
}

cmd_env() {
    [ -f "$ENV_FILE" ] || die "no $ENV_FILE yet: run '$0 up' first"
    cat "$ENV_FILE"
}

main() {
    local cmd="${1:-}"
    resolve_pg_dir
    case "$cmd" in
        -h|--help|help|"") usage; [ -n "$cmd" ]; return ;;
        env) cmd_env; return ;;
        status) cmd_status; return ;;
        up|down|restart-rabbitmq|stop-rabbitmq|start-rabbitmq|restart-postgres) ;;
        *) usage >&2; die "unknown command '$cmd'" ;;
    esac
    require_root "$@"
    check_ports
    if [ ! -d "$DIR" ] && { [ "$cmd" = down ] || [ "$cmd" = stop-rabbitmq ]; }; then
        log "$DIR does not exist: nothing to stop"
        return 0
    fi
    prepare_dir
    # One command at a time per services dir. Daemons are started with fd 9 closed so they
    # do not inherit the lock.
    exec 9>"$DIR/.lock"
    flock -w 300 9 || die "another services.sh is busy with $DIR"
    case "$cmd" in
        up) cmd_up ;;
        down) cmd_down ;;
        stop-rabbitmq) stop_rabbitmq ;;
        start-rabbitmq) ensure_installed; start_rabbitmq ;;
        restart-rabbitmq) ensure_installed; stop_rabbitmq; start_rabbitmq ;;
        restart-postgres)
            ensure_installed
            PG_BIN="$(pg_bindir)"
            stop_postgres
            start_postgres
            ;;
    esac
}

main "$@"
