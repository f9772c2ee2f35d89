"""PostgreSQL stopped for 15 s under checkout load: `serve` waits it out, loses nothing, answers
every message once (before the vault waited out a restart, 200 of 200 purchases with
e-mails were lost)."""

from __future__ import annotations

import re
import threading
import time
from collections import Counter
from pathlib import Path

import pytest

from dev.services import unique_topic_prefix
from infra.kafka.topics import Topics
from tests.conftest import SECRET
from tests.faults.harness import (
    PrivatePostgres,
    ServiceProcess,
    assert_consistent,
    produce_checkout_load,
    purchase_codes,
)
from tests.integration.kafka_helpers import create_topics
from tests.integration.test_relay import read_committed

pytestmark = [pytest.mark.faults, pytest.mark.postgres, pytest.mark.kafka,
              pytest.mark.timeout(150)]

OUTAGE_S = 15.0
LOAD_S = 36.0  # the outage starts 8 s into the load and ends 13 s before its end
WAVE = 20  # messages per wave, one wave every ~0.5 s
LOG_EVERY_S = 10.0


def test_r3_r11_postgres_down_15s_under_load_loses_nothing(
    private_postgres: PrivatePostgres, kafka_bootstrap: str, tmp_path: Path
) -> None:
    topics = Topics(unique_topic_prefix())
    create_topics(kafka_bootstrap, topics)
    env = {
        "GIFTCARDS_DATA_DIR": str(tmp_path / "var"),
        "GIFTCARDS_DATABASE_URL": private_postgres.url,
        "GIFTCARDS_SECRET_KEY": SECRET,
        "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
        "GIFTCARDS_TOPIC_PREFIX": topics.prefix,
        "GIFTCARDS_PARTITIONS": "2",
    }
    codes = purchase_codes(env, 300)  # cards for the redemptions of the load
    ids: Counter[str] = Counter()  # inputs per message id
    done = threading.Event()

    def load() -> None:
        """Waves of purchases (with buyer and recipient e-mails), redemptions and retries."""
        wave, started = 0, time.monotonic()
        while time.monotonic() - started < LOAD_S:
            mine = codes[wave * 8 : wave * 8 + 8]  # each code paid by one wave only
            ids.update(produce_checkout_load(kafka_bootstrap, topics, WAVE, seed=wave, codes=mine))
            wave += 1
            time.sleep(0.5)
        done.set()

    with ServiceProcess(["serve"], env, tmp_path / "serve.log") as serve:
        producer = threading.Thread(target=load, daemon=True)
        producer.start()
        serve.wait_for_log("checkout batch", timeout=60)
        time.sleep(6)
        handled_before = serve.log_text().count("checkout batch")
        private_postgres.stop()
        down_at = time.monotonic()
        time.sleep(OUTAGE_S)
        assert serve.alive(), serve.log_tail()
        private_postgres.start()
        outage = time.monotonic() - down_at
        producer.join(LOAD_S + 30)
        assert done.is_set(), "the load did not finish"

        assert_consistent(env, kafka_bootstrap, topics, message_ids=ids, settle_timeout=60)
        assert serve.alive(), f"serve exited ({serve.exit_code()}):\n{serve.log_tail()}"
        log = serve.log_text()
        assert serve.terminate() == 0, serve.log_tail()

    # The fault really hit the service while it worked, and it said what it waited for...
    assert handled_before > 0
    assert "checkout partition" in log and "waits for the database" in log, log[-3000:]
    # ... at most once per 10 s for each thing that waited.
    waits = re.findall(r"(\S+(?: partition \d+)?) waits for the database", log)
    most = int(outage // LOG_EVERY_S) + 2
    for what in set(waits):
        assert waits.count(what) <= most, (what, waits.count(what), log[-3000:])
    assert "Traceback" not in log, log[-3000:]

    # Every message valid: no dead letter at all (none `internal_error`), every purchase with
    # its e-mails accepted.
    dead = [r[3] for r in read_committed(kafka_bootstrap, topics.dead_letters)]
    assert dead == [], dead[:3]
    replies = [r[3] for r in read_committed(kafka_bootstrap, topics.results)]
    purchases = [r for r in replies if r["type"] == "GiftCardOrdered"]
    assert len({r["message_id"] for r in purchases}) > 100
    assert {r["status"] for r in purchases} == {"accepted"}
    assert {r["status"] for r in replies} <= {"accepted", "rejected"}
