"""P2: on a PostgreSQL of the test's own, after a purchase full of personal data and its
erasure, neither the WAL segments nor the data files hold any of it in clear, in any encoding
(it is sealed before it reaches the database); the customer id is kept, as documented."""

from __future__ import annotations

import subprocess
from pathlib import Path

import psycopg

from application.commands import PurchaseCard
from application.privacy import Privacy
from dev import pg_dev
from dev.pg_dev import SUPERUSER
from infra.bootstrap import build
from infra.config import load_settings
from tests.conftest import SECRET, FixedClock
from tests.faults.harness import PrivatePostgres
from tests.integration.test_erasure_scan_everywhere import (
    ADDRESS,
    CUSTOMER,
    EMAIL,
    MESSAGE,
    NAME,
    ORDER,
    PHONE,
    forms,
)
from tests.operator_register import enrol


def files_under(directory: Path) -> dict[str, bytes]:
    return {str(p.relative_to(directory)): p.read_bytes()
            for p in sorted(directory.rglob("*")) if p.is_file()}


def test_p2_the_postgres_wal_and_data_files_hold_no_clear_personal_data_after_erasure(
    private_postgres: PrivatePostgres, tmp_path: Path
) -> None:
    env = {"GIFTCARDS_DATABASE_URL": private_postgres.url, "GIFTCARDS_SECRET_KEY": SECRET,
           "GIFTCARDS_DATA_DIR": str(tmp_path / "var"),
           "GIFTCARDS_CHAIN_KEY_FILE": str(tmp_path / "secrets" / "chain.key")}
    service = build(load_settings(env), clock=FixedClock())
    try:
        card = service.app.purchase(PurchaseCard(
            market="FR", amount=5000, payment_method="card", buyer_id=CUSTOMER, buyer_email=EMAIL,
            buyer_name=NAME, message=MESSAGE, order_id=ORDER,
        ))
        privacy = Privacy(service)
        enrol(service, "dpo-1", "dpo")
        privacy.open_request(CUSTOMER, "erasure", privacy.today(), "req-wal")
        privacy.erase([CUSTOMER], "req-wal", "dpo-1")
    finally:
        service.close()
    cluster = private_postgres.cluster
    with psycopg.connect(host=str(cluster.socket_dir), port=cluster.port, user=SUPERUSER,
                         dbname="postgres", autocommit=True) as conn:
        conn.execute("CHECKPOINT")  # the data files written, the WAL kept as it is
    data_dir = private_postgres.cluster.data_dir
    wal = files_under(data_dir / "pg_wal")
    heap = files_under(data_dir / "base")
    assert wal and heap
    # The scan sees what it looks for: the customer id is in both (kept, documented).
    assert any(CUSTOMER.encode() in content for content in wal.values())
    assert any(CUSTOMER.encode() in content for content in heap.values())
    found = [f"{where}/{name}: {secret}"
             for where, files in (("pg_wal", wal), ("base", heap))
             for name, content in files.items()
             for secret in (EMAIL, NAME, PHONE, ADDRESS, MESSAGE, card.code)
             if any(form in content for form in forms(secret))]
    assert found == []
    # pg_waldump reads every record (a segment it cannot parse would hide its content).
    segments = sorted(n for n in wal if len(Path(n).name) == 24 and "/" not in n)
    waldump = [pg_dev._bin("pg_waldump"), "--path", str(data_dir / "pg_wal"), segments[0]]
    dumped = subprocess.run(waldump, capture_output=True, text=True, timeout=60)
    assert "rmgr:" in dumped.stdout
