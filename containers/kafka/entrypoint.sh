#!/bin/sh
# One KRaft node of a static quorum: KAFKA_NODE_ID, KAFKA_VOTERS (1@kafka-1:9093,...),
# KAFKA_ADVERTISED_HOST, KAFKA_CLUSTER_ID; replication 3 / min ISR 2 unless told otherwise.
# Clients and brokers talk SASL_SSL (SCRAM-SHA-512) on 9092, with the keystore and passwords the
# `certs` step wrote to the `tls` volume (TLS_DIR); the users `broker` (itself) and `giftcards`
# (the service) are created when the storage is formatted. The properties hold passwords: 0600.
set -eu
umask 077
root="${TLS_DIR:-/etc/giftcards/tls}"
tls="$root/kafka" ca="$root/ca.pem"
i=0
until [ -f "$root/ready" ]; do
  i=$((i + 1)); [ "$i" -le 300 ] || { echo "no certificates in $root" >&2; exit 1; }
  sleep 1
done
broker_password=$(cat "$tls/broker.password")
: "${KAFKA_NODE_ID:?}" "${KAFKA_VOTERS:?}" "${KAFKA_CLUSTER_ID:?}"
host="${KAFKA_ADVERTISED_HOST:-$(hostname)}"
rf="${KAFKA_REPLICATION_FACTOR:-3}"
isr="${KAFKA_MIN_INSYNC_REPLICAS:-2}"
data=/var/lib/kafka/data
config=/var/lib/kafka/server.properties
cat >"$config" <<PROPS
process.roles=broker,controller
node.id=${KAFKA_NODE_ID}
controller.quorum.voters=${KAFKA_VOTERS}
listeners=SASL_SSL://:9092,CONTROLLER://:9093
advertised.listeners=SASL_SSL://${host}:9092,CONTROLLER://${host}:9093
controller.listener.names=CONTROLLER
inter.broker.listener.name=SASL_SSL
listener.security.protocol.map=CONTROLLER:PLAINTEXT,SASL_SSL:SASL_SSL
sasl.enabled.mechanisms=SCRAM-SHA-512
sasl.mechanism.inter.broker.protocol=SCRAM-SHA-512
listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username="broker" password="${broker_password}";
ssl.keystore.type=PKCS12
ssl.keystore.location=${tls}/keystore.p12
ssl.keystore.password=$(cat "$tls/keystore.password")
ssl.truststore.type=PEM
ssl.truststore.location=${ca}
ssl.endpoint.identification.algorithm=https
log.dirs=${data}
auto.create.topics.enable=false
group.initial.rebalance.delay.ms=0
offsets.topic.replication.factor=${rf}
transaction.state.log.replication.factor=${rf}
transaction.state.log.min.isr=${isr}
share.coordinator.state.topic.replication.factor=${rf}
share.coordinator.state.topic.min.isr=${isr}
default.replication.factor=${rf}
min.insync.replicas=${isr}
unclean.leader.election.enable=false
broker.session.timeout.ms=4000
broker.heartbeat.interval.ms=1000
offsets.topic.num.partitions=10
transaction.state.log.num.partitions=10
log.cleaner.dedupe.buffer.size=33554432
PROPS
# The classpath's * is the JVM's to expand, not the shell's.
log4j=-Dlog4j2.configurationFile=/opt/kafka/log4j2.properties
java_run() { java "-Xmx${KAFKA_HEAP:-384m}" "$log4j" -cp '/opt/kafka/lib/*' "$@"; }
if [ ! -f "$data/meta.properties" ]; then
  java_run kafka.tools.StorageTool format -t "$KAFKA_CLUSTER_ID" -c "$config" \
    --add-scram "SCRAM-SHA-512=[name=broker,password=${broker_password}]" \
    --add-scram "SCRAM-SHA-512=[name=giftcards,password=$(cat "$tls/giftcards.password")]"
fi
# Broker logs on stdout, the container's log.
exec java "-Xmx${KAFKA_HEAP:-384m}" "$log4j" -cp '/opt/kafka/lib/*' kafka.Kafka "$config"
