"""An auditor downloads a market's month as an evidence pack from the console (as `audit export
--period`): the zip verifies offline against the service's key ring, and every customer it
names is access-logged under the auditor's name (R21). In-process over HTTP, on both stores."""

from __future__ import annotations

import io
import re
import zipfile
from pathlib import Path

from starlette.testclient import TestClient

from application.commands import PurchaseCard
from application.operators import Operators
from application.privacy import Privacy
from application.privacy_reads import PiiReader
from entrypoints.http.app import create_app
from infra import checkpoints as cps
from infra.service import Service
from projections.evidence import verify_pack

TOKEN = re.compile(r'name="csrf" value="([^"]+)"')


def test_r21_an_auditor_downloads_a_verifiable_evidence_pack_and_is_logged(
    console_service: Service, tmp_path: Path,
) -> None:
    app, settings = console_service.app, console_service.settings
    operators = Operators(app)
    root = operators.add("root", "admin", None)["key"]
    ava = operators.add("ava", "auditor", operators.authenticate(root))["key"]
    app.purchase(PurchaseCard(
        order_id="ord-pack", market="FR", amount=5000, payment_method="card", buyer_id="cus-pack",
        buyer_email="pack@example.org",
    ))
    key = cps.trusted_signing_key(settings.signing_key_file, settings.checkpoint_dir,
                                  create=True)
    cps.create(app.recorder, app.mapper, key, app.now(), settings.checkpoint_dir, None)
    with TestClient(create_app(console_service)) as client:
        token = TOKEN.search(client.get("/console/sign-in").text)
        assert token is not None
        client.post("/console/sign-in", data={"csrf": token.group(1), "key": ava})
        csrf = TOKEN.search(client.get("/console/audit").text)
        assert csrf is not None
        fields = {"market": "FR", "period": "2026-01"}
        assert client.post("/console/audit/evidence", data=fields).status_code == 403
        done = client.post("/console/audit/evidence", data={**fields, "csrf": csrf.group(1)})
    assert done.status_code == 200, done.text
    assert done.headers["content-disposition"] == 'attachment; filename="evidence-FR-2026-01.zip"'
    zipfile.ZipFile(io.BytesIO(done.content)).extractall(tmp_path)
    ring = cps.KeyRing.of(key.public_key())
    checked = verify_pack(tmp_path / "pack", ring)
    assert checked["ok"], checked
    reader = PiiReader(console_service, "root", "test: who read", "test")
    entries = Privacy(console_service).access_log("cus-pack", reader)["entries"]
    assert ("ava", "evidence pack FR 2026-01") in {(e["operator"], e["purpose"])
                                                    for e in entries}
