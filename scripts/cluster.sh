#!/usr/bin/env bash
# A throwaway PostgreSQL cluster for this checkout.
#
#   scripts/cluster.sh start     initdb (once) and start; idempotent
#   scripts/cluster.sh restart   restart it (after make install: dltrain is
#                                preloaded, so running backends keep the old
#                                library until a restart)
#   scripts/cluster.sh stop      stop it (data kept)
#   scripts/cluster.sh destroy   stop it and delete its data
#   scripts/cluster.sh status    is it running?
#   scripts/cluster.sh env       print the PGHOST/PGPORT/PGUSER exports
#   scripts/cluster.sh psql ...  run psql against it
#
# PostgreSQL refuses to run as root, so as root the server runs as the
# `postgres` OS user.  Its data and socket live under /tmp/dltrain-<hash of
# the checkout path>, which that user can reach wherever the checkout sits
# (even in a folder only root can enter).  The server listens on a Unix
# socket only.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
ID=$(printf '%s' "$ROOT" | md5sum | cut -c1-12)
BASE=${DLTRAIN_CLUSTER_DIR:-/tmp/dltrain-$ID}
PGDATA_DIR=$BASE/data
SOCK=$BASE/sock
PORT=${DLTRAIN_PGPORT:-5432}
PG_CONFIG=${PG_CONFIG:-/usr/lib/postgresql/15/bin/pg_config}
[ -x "$PG_CONFIG" ] || PG_CONFIG=pg_config
PGBIN=$("$PG_CONFIG" --bindir)

as_pg() {
	if [ "$(id -u)" = 0 ]; then
		# from /, which postgres can enter wherever the checkout sits (every
		# path given is absolute)
		(cd / && runuser -u postgres -- "$@")
	else
		"$@"
	fi
}

running() {
	[ -f "$PGDATA_DIR/postmaster.pid" ] && as_pg "$PGBIN/pg_ctl" -D "$PGDATA_DIR" status >/dev/null 2>&1
}

start() {
	mkdir -p "$BASE"
	[ "$(id -u)" = 0 ] && chown postgres: "$BASE"
	if [ ! -f "$PGDATA_DIR/PG_VERSION" ]; then
		as_pg mkdir -p "$SOCK"
		as_pg "$PGBIN/initdb" -D "$PGDATA_DIR" -U postgres --auth=trust --data-checksums \
			--encoding=UTF8 --locale=C --no-sync >"$BASE/initdb.log" 2>&1 ||
			{ cat "$BASE/initdb.log"; exit 1; }
	fi
	# settings live in their own file, rewritten at every start, so that a
	# cluster made by an older checkout gets the current ones too
	as_pg tee "$PGDATA_DIR/dltrain_cluster.conf" >/dev/null <<CONF
# dltrain throwaway cluster (written by scripts/cluster.sh at every start)
listen_addresses = ''
unix_socket_directories = '$SOCK'
port = $PORT
fsync = off
synchronous_commit = off
full_page_writes = off
max_connections = 40
shared_buffers = 256MB
max_parallel_workers_per_gather = 0
lc_messages = 'C'
# the progress view needs dltrain's shared memory
shared_preload_libraries = 'dltrain'
CONF
	grep -q "^include_if_exists = 'dltrain_cluster.conf'" "$PGDATA_DIR/postgresql.conf" ||
		echo "include_if_exists = 'dltrain_cluster.conf'" | as_pg tee -a "$PGDATA_DIR/postgresql.conf" >/dev/null
	if ! running; then
		as_pg "$PGBIN/pg_ctl" -D "$PGDATA_DIR" -l "$BASE/server.log" -w -t 60 start >/dev/null ||
			{ tail -n 30 "$BASE/server.log"; exit 1; }
	fi
	echo "cluster running: PGHOST=$SOCK PGPORT=$PORT PGUSER=postgres (log: $BASE/server.log)"
}

stop() {
	if running; then
		as_pg "$PGBIN/pg_ctl" -D "$PGDATA_DIR" -m fast -w stop >/dev/null
		echo "cluster stopped"
	else
		echo "cluster not running"
	fi
}

case "${1:-}" in
	start) start ;;
	stop) stop ;;
	restart) stop >/dev/null; start ;;
	destroy) stop; rm -rf "$BASE"; echo "cluster removed: $BASE" ;;
	status) if running; then echo "running ($BASE)"; else echo "not running ($BASE)"; exit 3; fi ;;
	env) echo "export PGHOST=$SOCK PGPORT=$PORT PGUSER=postgres" ;;
	psql) shift; PGHOST=$SOCK PGPORT=$PORT PGUSER=postgres exec psql "$@" ;;
	*) echo "usage: $0 start|restart|stop|destroy|status|env|psql [args]" >&2; exit 2 ;;
esac
