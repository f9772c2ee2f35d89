#!/bin/sh
# First start: initdb with POSTGRES_USER / POSTGRES_PASSWORD / POSTGRES_DB, password logins
# from the network; then the server in the foreground. With POSTGRES_TLS_DIR (server.crt and
# server.key, which the compose stack's `certs` step writes): ssl = on and TCP logins over TLS
# only (hostssl), on every start.
set -eu
: "${POSTGRES_USER:?}" "${POSTGRES_PASSWORD:?}" "${POSTGRES_DB:?}"
bin=/usr/lib/postgresql/15/bin
data=/var/lib/pgdata/15
if [ ! -f "$data/PG_VERSION" ]; then
  pw=$(mktemp)
  printf '%s\n' "$POSTGRES_PASSWORD" >"$pw"
  "$bin/initdb" -D "$data" -U "$POSTGRES_USER" --pwfile="$pw" -A scram-sha-256 -E UTF8 >/dev/null
  rm -f "$pw"
  echo "host all all 0.0.0.0/0 scram-sha-256" >>"$data/pg_hba.conf"
  "$bin/pg_ctl" -D "$data" -o "-c listen_addresses=''" -w start >/dev/null
  PGPASSWORD="$POSTGRES_PASSWORD" "$bin/psql" -h /run/postgresql -U "$POSTGRES_USER" \
    -d postgres -c "CREATE DATABASE \"$POSTGRES_DB\"" >/dev/null
  "$bin/pg_ctl" -D "$data" -m fast -w stop >/dev/null
fi
if [ -n "${POSTGRES_TLS_DIR:-}" ]; then
  i=0
  until [ -f "$POSTGRES_TLS_DIR/server.key" ] && [ -f "$POSTGRES_TLS_DIR/../ready" ]; do
    i=$((i + 1)); [ "$i" -le 300 ] || { echo "no certificate in $POSTGRES_TLS_DIR" >&2; exit 1; }
    sleep 1
  done
  sed -i 's/^host\([[:space:]]\)/hostssl\1/' "$data/pg_hba.conf"
  exec "$bin/postgres" -D "$data" -c listen_addresses='*' -c ssl=on \
    -c ssl_cert_file="$POSTGRES_TLS_DIR/server.crt" -c ssl_key_file="$POSTGRES_TLS_DIR/server.key"
fi
exec "$bin/postgres" -D "$data" -c listen_addresses='*'
