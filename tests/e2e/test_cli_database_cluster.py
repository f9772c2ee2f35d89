"""The CLI on a PostgreSQL cluster URL (every node named): a cluster that does not answer is
named node by node, as a single server is."""

from __future__ import annotations

import pytest

from tests.e2e.test_cli_contract import MISSING, one_object, store  # noqa: F401 (its fixture)

pytestmark = pytest.mark.postgres

CLUSTER = ("postgresql://u:hunter2@127.0.0.1:1,127.0.0.1:2/giftcards"
           "?target_session_attrs=read-write")


@pytest.mark.usefixtures("store")
def test_an_unreachable_cluster_is_named_by_every_host_and_port(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GIFTCARDS_DATABASE_URL", CLUSTER)
    status, payload = one_object(capsys, "show", MISSING)
    assert status == 3 and payload["error"]["code"] == "database_unavailable"
    assert "127.0.0.1:1,127.0.0.1:2" in payload["error"]["message"]
    assert "hunter2" not in payload["error"]["message"]
