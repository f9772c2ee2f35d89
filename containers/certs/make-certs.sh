#!/bin/sh
# Once per deployment (the compose `certs` service): a CA, the servers' certificates signed by
# it, the Kafka SCRAM passwords and the database cluster's internal passwords, in the `tls`
# volume (TLS_DIR), each key readable only by the server that uses it. Kept when present, so
# a restart changes nothing.
set -eu
dir="${TLS_DIR:-/etc/giftcards/tls}"
days="${TLS_DAYS:-825}"
# The users of the images that read them (fixed uids in their Dockerfiles; postgres from the
# shared base).
kafka_uid=10002 giftcards_uid=10001 mail_uid=10003
postgres_uid=$(id -u postgres)
[ -f "$dir/ready" ] && exit 0
umask 077
work=$(mktemp -d)
key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }
key "$work/ca.key"
openssl req -x509 -new -key "$work/ca.key" -out "$work/ca.pem" -days "$days" \
  -subj "/CN=giftcards-compose-ca" -addext "basicConstraints=critical,CA:TRUE" \
  -addext "keyUsage=critical,keyCertSign,cRLSign"
# server NAME HOST...: NAME.pem / NAME.key for those DNS names, signed by the CA.
server() {
  name=$1; shift
  sans=$(printf 'DNS:%s,' "$@"); sans=${sans%,}
  key "$work/$name.key"
  openssl req -new -key "$work/$name.key" -out "$work/$name.csr" -subj "/CN=$1"
  printf '%s\n' "subjectAltName=$sans" "basicConstraints=critical,CA:FALSE" \
    "keyUsage=critical,digitalSignature,keyEncipherment" "extendedKeyUsage=serverAuth" \
    >"$work/$name.ext"
  openssl x509 -req -in "$work/$name.csr" -CA "$work/ca.pem" -CAkey "$work/ca.key" \
    -CAcreateserial -out "$work/$name.pem" -days "$days" -extfile "$work/$name.ext" 2>/dev/null
}
server kafka kafka-1 kafka-2 kafka-3
# One certificate for every database node (the service verifies the name of whichever node it
# reaches, the nodes each other's for replication and pg_rewind).
server postgres pg-1 pg-2
server mail mail
secret() { openssl rand -hex 24; }
mkdir -p "$dir/kafka" "$dir/postgres" "$dir/mail" "$dir/giftcards"
# Kafka: a PKCS12 keystore, the broker's own SCRAM password and the service's.
secret >"$dir/kafka/keystore.password"
openssl pkcs12 -export -in "$work/kafka.pem" -inkey "$work/kafka.key" -name server \
  -out "$dir/kafka/keystore.p12" -passout "file:$dir/kafka/keystore.password"
secret >"$dir/kafka/broker.password"
secret >"$dir/kafka/giftcards.password"
cp "$dir/kafka/giftcards.password" "$dir/giftcards/kafka.password"
cp "$work/postgres.pem" "$dir/postgres/server.crt"
cp "$work/postgres.key" "$dir/postgres/server.key"
# The database cluster's own accounts (Patroni's superuser and its streaming replication).
secret >"$dir/postgres/superuser.password"
secret >"$dir/postgres/replication.password"
cp "$work/mail.pem" "$dir/mail/server.pem"
cp "$work/mail.key" "$dir/mail/server.key"
chown -R "$kafka_uid" "$dir/kafka"
chown -R "$postgres_uid" "$dir/postgres"
chown -R "$mail_uid" "$dir/mail"
chown -R "$giftcards_uid" "$dir/giftcards"
# Everyone trusts the CA's certificate; its key stays in root's directory of the volume.
mkdir -p "$dir/ca" && cp "$work/ca.key" "$dir/ca/ca.key"
install -m 0644 "$work/ca.pem" "$dir/ca.pem"
chmod 0755 "$dir" "$dir/kafka" "$dir/postgres" "$dir/mail" "$dir/giftcards"
rm -rf "$work"
touch "$dir/ready"
echo "certificates and Kafka SCRAM passwords written to $dir"
