#!/bin/sh
# One Patroni node (PATRONI_NAME, reached as that host name by the others and the service) over
# the stack's etcd (PATRONI_ETCD3_HOSTS). On every start: waits for the `certs` step, writes
# Patroni's configuration and runs Patroni in the foreground (it starts, creates or rewinds its
# PostgreSQL). The cluster settings (bootstrap.dcs) are those of dev/patroni_dev.py: synchronous
# replication, a crashed primary failed over at once, the old primary rewound as a standby.
# Every TCP login is over TLS (hostssl), replication included; the superuser and replication
# passwords are the `certs` step's, in the tls volume.
set -eu
: "${PATRONI_NAME:?}" "${PATRONI_ETCD3_HOSTS:?}" "${POSTGRES_USER:?}" "${POSTGRES_PASSWORD:?}" \
  "${POSTGRES_DB:?}" "${POSTGRES_TLS_DIR:?}"
i=0
until [ -f "$POSTGRES_TLS_DIR/server.key" ] && [ -f "$POSTGRES_TLS_DIR/../ready" ]; do
  i=$((i + 1)); [ "$i" -le 300 ] || { echo "no certificate in $POSTGRES_TLS_DIR" >&2; exit 1; }
  sleep 1
done
superuser_pw=$(cat "$POSTGRES_TLS_DIR/superuser.password")
replication_pw=$(cat "$POSTGRES_TLS_DIR/replication.password")
export POSTGRES_USER POSTGRES_PASSWORD POSTGRES_DB
config=/etc/patroni/patroni.yml
umask 077
cat >"$config" <<YAML
scope: ${PATRONI_SCOPE:-giftcards}
name: ${PATRONI_NAME}
restapi:
  listen: 0.0.0.0:8008
  connect_address: ${PATRONI_NAME}:8008
etcd3:
  hosts: ${PATRONI_ETCD3_HOSTS}
bootstrap:
  dcs:
    ttl: 12
    loop_wait: 1
    retry_timeout: 5
    synchronous_mode: true
    synchronous_mode_strict: ${PATRONI_SYNCHRONOUS_MODE_STRICT:-false}
    primary_start_timeout: 0
    postgresql:
      use_pg_rewind: true
      parameters:
        synchronous_commit: "on"
        max_connections: 200
        wal_keep_size: 256MB
        max_wal_senders: 10
        max_replication_slots: 10
  initdb: [{encoding: UTF8}, {locale: C.UTF-8}, {auth-local: trust}, {auth-host: scram-sha-256}]
  post_bootstrap: /usr/local/bin/patroni-post-bootstrap
postgresql:
  listen: 0.0.0.0:5432
  connect_address: ${PATRONI_NAME}:5432
  data_dir: /var/lib/pgdata/15
  bin_dir: /usr/lib/postgresql/15/bin
  pgpass: /tmp/pgpass
  use_unix_socket: true
  authentication:
    superuser: {username: postgres, password: "${superuser_pw}"}
    replication: {username: replicator, password: "${replication_pw}", sslmode: verify-full,
                  sslrootcert: ${POSTGRES_TLS_DIR}/../ca.pem}
    rewind: {username: postgres, password: "${superuser_pw}", sslmode: verify-full,
             sslrootcert: ${POSTGRES_TLS_DIR}/../ca.pem}
  parameters:
    unix_socket_directories: /run/postgresql
    ssl: "on"
    ssl_cert_file: ${POSTGRES_TLS_DIR}/server.crt
    ssl_key_file: ${POSTGRES_TLS_DIR}/server.key
  pg_hba:
    - local all all trust
    - hostssl replication replicator 0.0.0.0/0 scram-sha-256
    - hostssl all all 0.0.0.0/0 scram-sha-256
YAML
exec patroni "$config"
