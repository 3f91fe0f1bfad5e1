#!/usr/bin/env bash
# Starts a private, throwaway PostgreSQL server for the tests and prints its
# URL on stdout; `scripts/postgres.sh stop DIR` stops it and removes DIR.
#
#   url_and_dir="$(scripts/postgres.sh start)"   # "URL DIR"
#
# The cluster lives in a new temp dir, listens on 127.0.0.1 on a free port and
# a Unix socket in that dir, and trusts local connections (user `chorus`).
# As root, the server runs as the `postgres` user (PostgreSQL refuses root).
set -euo pipefail

bindir="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n1 || true)"
if [[ -z "$bindir" ]]; then
  bindir="$(dirname "$(command -v initdb || true)")"
fi
[[ -x "$bindir/initdb" ]] || { echo "PostgreSQL server binaries not found (apt-get install postgresql)" >&2; exit 1; }

as_owner=()
if [[ "$(id -u)" == 0 ]]; then
  as_owner=(runuser -u postgres --)
fi

case "${1:-start}" in
  start)
    dir="$(mktemp -d /tmp/chorus-pg.XXXXXX)"
    [[ "$(id -u)" == 0 ]] && chown postgres: "$dir"
    port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
    "${as_owner[@]}" "$bindir/initdb" -D "$dir/data" -U chorus -A trust --no-sync >"$dir/initdb.log" 2>&1 \
      || { cat "$dir/initdb.log" >&2; exit 1; }
    "${as_owner[@]}" "$bindir/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w \
      -o "-c listen_addresses=127.0.0.1 -p $port -k $dir -c fsync=off" start >/dev/null \
      || { cat "$dir/server.log" >&2; exit 1; }
    echo "postgres://chorus@127.0.0.1:$port/postgres $dir"
    ;;
  stop)
    dir="${2:?usage: scripts/postgres.sh stop DIR}"
    "${as_owner[@]}" "$bindir/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null 2>&1 || true
    rm -rf "$dir"
    ;;
  *)
    echo "usage: scripts/postgres.sh start | stop DIR" >&2
    exit 2
    ;;
esac
