# Starts and stops a private Redis and PostgreSQL on loopback, with their data
# in a directory of the caller's choosing. Sourced by scripts/run and
# scripts/test. PostgreSQL refuses to run as root, so as root its data
# directory belongs to the 'postgres' user and it runs as that user.

pg_bin() { ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1; }

free_port() {
    python3 - <<'PY'
import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])
s.close()
PY
}

# Where PostgreSQL keeps its files for DIR: DIR/pg, unless (as root) the
# postgres user cannot reach it (a checkout under /root, a mktemp -d
# directory), then a directory of its own under /var/tmp named after DIR.
pg_dir_for() {
    local dir=$1
    if [ "$(id -u)" -ne 0 ]; then
        echo "$dir/pg"
        return
    fi
    mkdir -p "$dir/pg"
    if runuser -u postgres -- test -x "$dir/pg" 2>/dev/null; then
        echo "$dir/pg"
    else
        echo "/var/tmp/warden-pg.$(echo "$dir" | md5sum | cut -c1-12)"
    fi
}

# services_start DIR: sets WARDEN_REDIS_PORT, WARDEN_PG_PORT, WARDEN_PG_DSN,
# WARDEN_REDIS_URL and writes DIR/services.env.
services_start() {
    local dir=$1 pg
    mkdir -p "$dir/redis"
    pg=$(pg_dir_for "$dir")
    mkdir -p "$pg"
    WARDEN_REDIS_PORT=${WARDEN_REDIS_PORT:-$(free_port)}
    WARDEN_PG_PORT=${WARDEN_PG_PORT:-$(free_port)}
    redis-server --bind 127.0.0.1 --port "$WARDEN_REDIS_PORT" --dir "$dir/redis" \
        --daemonize yes --pidfile "$dir/redis/redis.pid" --logfile "$dir/redis/redis.log" \
        --save "" --appendonly no >/dev/null
    local bin run_as=()
    bin=$(pg_bin)
    if [ "$(id -u)" -eq 0 ]; then
        chown -R postgres:postgres "$pg"
        run_as=(runuser -u postgres --)
    fi
    if [ ! -f "$pg/data/PG_VERSION" ]; then
        "${run_as[@]}" "$bin/initdb" -D "$pg/data" -U warden --auth=trust -E UTF8 >/dev/null
    fi
    "${run_as[@]}" "$bin/pg_ctl" -D "$pg/data" -l "$pg/pg.log" -w -t 60 \
        -o "-c listen_addresses=127.0.0.1 -p $WARDEN_PG_PORT -k $pg -c fsync=off" start >/dev/null
    "${run_as[@]}" "$bin/createdb" -h 127.0.0.1 -p "$WARDEN_PG_PORT" -U warden warden 2>/dev/null || true
    for _ in $(seq 50); do
        redis-cli -p "$WARDEN_REDIS_PORT" ping >/dev/null 2>&1 && break
        sleep 0.1
    done
    WARDEN_REDIS_URL="redis://127.0.0.1:$WARDEN_REDIS_PORT"
    WARDEN_PG_DSN="host=127.0.0.1 port=$WARDEN_PG_PORT user=warden dbname=warden"
    export WARDEN_REDIS_PORT WARDEN_PG_PORT WARDEN_REDIS_URL WARDEN_PG_DSN
    cat >"$dir/services.env" <<ENV
WARDEN_REDIS_PORT=$WARDEN_REDIS_PORT
WARDEN_PG_PORT=$WARDEN_PG_PORT
WARDEN_REDIS_URL=$WARDEN_REDIS_URL
WARDEN_PG_DSN="$WARDEN_PG_DSN"
ENV
}

# services_stop DIR: stops what services_start started there.
services_stop() {
    local dir=$1 bin pg run_as=()
    bin=$(pg_bin)
    pg=$(pg_dir_for "$dir")
    [ "$(id -u)" -eq 0 ] && run_as=(runuser -u postgres --)
    if [ -f "$pg/data/postmaster.pid" ]; then
        "${run_as[@]}" "$bin/pg_ctl" -D "$pg/data" -m fast -w stop >/dev/null 2>&1 || true
    fi
    # A private directory under /var/tmp belongs to a temporary DIR only.
    case "$pg" in /var/tmp/warden-pg.*) [ "${WARDEN_KEEP_PG:-0}" = 1 ] || rm -rf "$pg" ;; esac
    if [ -f "$dir/redis/redis.pid" ]; then
        kill "$(cat "$dir/redis/redis.pid")" 2>/dev/null || true
    fi
}
