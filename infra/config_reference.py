"""What each configuration variable means: docs/reference/configuration.md is generated from it."""

from __future__ import annotations

# What each variable means: the configuration reference (docs/reference/configuration.md) is
# generated from this, and a test fails on a variable the settings read that is missing here.
VARIABLES: dict[str, str] = {
    "GIFTCARDS_DATABASE_URL": "`sqlite:///path` (default `<data dir>/giftcards.sqlite3`) or "
    "`postgresql://user:pw@host:port/db[?sslmode=verify-full&sslrootcert=/path/ca.pem…]`: "
    "libpq's parameters in the query reach every connection (the store's, the views', the "
    "API's); production refuses PostgreSQL without `sslmode=verify-full` or `verify-ca`. A "
    "cluster (Patroni): every node, `postgresql://user:pw@host1:5432,host2:5432/db?"
    "target_session_attrs=read-write&…`, and libpq connects to the primary (required with "
    "several hosts; docs/operations.md)",
    "GIFTCARDS_DATABASE_REPLICATION": "what production accepts of PostgreSQL's replication, "
    "checked at start: `synchronous` (default: the server is a primary, "
    "`synchronous_standby_names` is set and `synchronous_commit` is `on` or `remote_apply`), "
    "`single-node` (stated: no standby; the loss of the machine loses what the last backup "
    "lacks) or `asynchronous` (explicitly accepting that a failover loses the last commits); "
    "anything else refused with `asynchronous_replication_refused` or `database_not_primary`, "
    "exit 2",
    "GIFTCARDS_DATA_DIR": "where local files go (default `./var/`): the SQLite store, dev keys, "
    "checkpoints, the KEK ring, the maildir",
    "GIFTCARDS_ENV": "`development` (default), `test` or `production`, exactly; anything else "
    "(`prod`, `Production`) is refused with exit 2",
    "GIFTCARDS_SECRET_KEY": "master key (≥ 32 characters, ≥ 128 bits estimated in production) "
    "for code HMACs, subject pseudonyms and key wrapping; required in production, else a dev key "
    "is generated under the data dir. Generate one with `python -c 'import secrets; "
    "print(secrets.token_urlsafe(48))'`; BACK IT UP: without it no code can be checked",
    "GIFTCARDS_NOW": "ISO-8601 instant pinning the clock (tests, sandboxes, the demo); refused "
    "in production",
    "KAFKA_BOOTSTRAP_SERVERS": "Kafka brokers, `host:port[,host:port…]`; unset = embedded mode "
    "(views follow the store)",
    "GIFTCARDS_MARKETS_FILE": "TOML of the markets and the code-guessing limit (default "
    "`domain/markets.toml`)",
    "GIFTCARDS_TOPIC_PREFIX": "prefix of every topic name (default none)",
    "GIFTCARDS_PARTITIONS": "partitions of the topics the service creates (12)",
    "GIFTCARDS_REPLICATION_FACTOR": "their replication factor (1; 3 on a cluster)",
    "GIFTCARDS_VIEWS_URL": "database of the views (`sqlite:///…` or `postgresql://…`), default "
    "the event store's",
    "GIFTCARDS_PROJECTION_BATCH": "envelopes per view transaction when `project --source store` "
    "follows the store or `projections rebuild --source store` replays it (4000)",
    "GIFTCARDS_FRAUD_CONFIG": "TOML overriding the F1–F6 thresholds (`[fraud]` table, see "
    "`projections/config.py`)",
    "GIFTCARDS_LOG_FORMAT": "`text` (default) or `json` (one object per line: `ts`, `level`, "
    "`logger`, `message`, `exc`)",
    "GIFTCARDS_RELAY_LEASE_SECONDS": "how long the active relay's (and delivery worker's and "
    "checkpoint signer's) lease lasts unrenewed (10)",
    "GIFTCARDS_CLOUDEVENTS_TYPE_PREFIX": "reverse-DNS prefix of the CloudEvents types "
    "(`com.example.giftcard`)",
    "GIFTCARDS_CLOUDEVENTS_SOURCE": "absolute URI naming this service, the CloudEvents `source` "
    "(`https://giftcards.example.com`)",
    "GIFTCARDS_SIGNING_KEY_FILE": "Ed25519 private key (PEM) signing audit checkpoints (default "
    "`<data dir>/checkpoint-signing.pem`, generated outside production); back it up",
    "GIFTCARDS_CHAIN_KEY_FILE": "the chain key (32 random bytes, hex) sealing every card "
    "event's chain link with HMAC-SHA256; outside the database, apart from the signing key and "
    "the KEKs. Default `$XDG_CONFIG_HOME/giftcards/chain.key` (`~/.config/giftcards/chain.key`), "
    "generated outside production, never in the data dir; required in production; back it up",
    "GIFTCARDS_CHECKPOINT_DIR": "where signed checkpoints and their public key go (default "
    "`<data dir>/checkpoints`)",
    "GIFTCARDS_CHECKPOINT_EVERY_EVENTS": "`serve` signs a checkpoint after this many new events "
    "(10000)",
    "GIFTCARDS_CHECKPOINT_EVERY_MINUTES": "…or this long after the last one when any event is "
    "new (60)",
    "GIFTCARDS_CHECKPOINT_INCREMENT_SECONDS": "in between, `serve` signs an increment of the "
    "card heads that changed at most this long after they did (5; 0: no increments)",
    "GIFTCARDS_KEK_FILE": "the key-encryption keys wrapping subject keys (default "
    "`<data dir>/kek-ring`); every process must see the same file; back it up",
    "GIFTCARDS_KEK_ROTATION_HOURS": "how often `serve`/`gdpr purge` rotate the KEK (24)",
    "GIFTCARDS_RETENTION_CARD_YEARS": "personal data shredded this long after a subject's last "
    "card event (3)",
    "GIFTCARDS_RETENTION_DEAD_LETTER_DAYS": "dead letters expire on their topic after this many "
    "days (30, set when the topic is created)",
    "GIFTCARDS_RETENTION_ACCESS_LOG_DAYS": "access-log entries deleted by `gdpr purge` this many "
    "days after they were written (365)",
    "GIFTCARDS_RETENTION_REQUEST_YEARS": "closed rights requests and their outcomes deleted by "
    "`gdpr purge` this many years after they were closed (5)",
    "GIFTCARDS_SMTP_URL": "mail server of the code e-mails, `smtp://[user:pw@]host[:port]"
    "[?starttls=1]` or `smtps://…`; unset = `.eml` files in `<data dir>/mail/new/`; "
    "production requires `smtps://` or `?starttls=1`",
    "GIFTCARDS_CONSOLE": "the operators' console under `/console/` on the HTTP API (off; "
    "`--console` of `api`/`serve`, or `giftcards console`)",
    "GIFTCARDS_CONSOLE_IDLE_SECONDS": "a console session unused this long is signed out (900)",
    "GIFTCARDS_HOLD_SECONDS": "how long an HTTP authorization holds a card (1800)",
    "GIFTCARDS_API_GROUP_COMMIT": "the HTTP API saves concurrent commands in one transaction "
    "per batch (group commit, on); `off` only to measure the naive baseline",
    "GIFTCARDS_API_KEY_CACHE_SECONDS": "how long an API process reuses what it read of an API "
    "key (1.0; 0 = read the store on every request): a revoked key is refused everywhere "
    "within this time",
    "GIFTCARDS_MAX_CLOCK_SKEW_SECONDS": "how far (seconds) this host's clock may be from the "
    "database's (2.0): time decisions use the database's clock; past this the process takes no "
    "lease and records no event, and `serve`, `relay` and `consume` refuse to start (exit 2)",
    "GIFTCARDS_KAFKA_SECURITY_PROTOCOL": "`PLAINTEXT` (default outside production) or "
    "`SASL_SSL`, for every Kafka client of the service (relay, consumers, projections, API, "
    "admin); production refuses anything but `SASL_SSL` when `KAFKA_BOOTSTRAP_SERVERS` is set",
    "GIFTCARDS_KAFKA_SASL_MECHANISM": "`SCRAM-SHA-512` (default) or `SCRAM-SHA-256`",
    "GIFTCARDS_KAFKA_SASL_USERNAME": "the service's SCRAM user on the brokers (required with "
    "`SASL_SSL`)",
    "GIFTCARDS_KAFKA_SASL_PASSWORD": "its password (or give `GIFTCARDS_KAFKA_SASL_PASSWORD_FILE`)",
    "GIFTCARDS_KAFKA_SASL_PASSWORD_FILE": "a file holding the SCRAM password (read at start; "
    "preferred: it stays out of the process environment)",
    "GIFTCARDS_KAFKA_CA_FILE": "PEM file of the CA(s) that signed the brokers' certificates "
    "(default: the system's trusted CAs); the brokers' host names are always verified",
    "GIFTCARDS_SMTP_CA_FILE": "PEM file of the CA(s) that signed the mail server's certificate "
    "(default: the system's trusted CAs); STARTTLS and smtps:// always verify the certificate "
    "and host name",
    "GIFTCARDS_HTTP_HEADER_TIMEOUT_SECONDS": "an HTTP client must send its request line and "
    "headers within this many seconds of connecting or of starting a request (10); else the "
    "connection is closed (408 if nothing was answered yet)",
    "GIFTCARDS_HTTP_BODY_TIMEOUT_SECONDS": "an HTTP request's body must arrive within this many "
    "seconds of its headers (10); else 408 and the connection is closed",
    "GIFTCARDS_HTTP_KEEP_ALIVE_SECONDS": "an idle keep-alive HTTP connection is closed after this "
    "many seconds (5)",
    "GIFTCARDS_HTTP_MAX_HEADER_BYTES": "request line and headers over this many bytes are "
    "refused 431 and the connection closed (16384)",
    "GIFTCARDS_DB_POOL_SIZE": "PostgreSQL connections one process holds at most (10, at least "
    "4): all its parts and the event store share one pool; give PostgreSQL the sum over "
    "instances (docs/operations.md, Connection budget)",
    "GIFTCARDS_HTTP_MAX_CONNECTIONS": "open HTTP connections per API process (512; keep it under "
    "the process's file limit); a connection over it is closed at once",
    "GIFTCARDS_RETENTION_FRAUD_YEARS": "fraud alerts and F1/F2 window state are dropped this "
    "long after they were raised (5; `gdpr purge`, and `serve` hourly)",
}
