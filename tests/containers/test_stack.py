"""The docker-compose stack, run for real with podman-compose on the locally built images (3
Kafka nodes over SASL_SSL, a 2-node Patroni PostgreSQL cluster over TLS only, a STARTTLS mail
server, 2 `serve` replicas in production): one purchase and one redemption through it. Run by
`make container-test` (a step of .ci/run), not by `make test`: it builds images."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from dev.containers import build, podman, podman_env
from tests.containers.conftest import Stack, giftcards, http, until
from tests.mail.inbox import code_in, message_parts, read_eml

pytestmark = [pytest.mark.containers, pytest.mark.timeout(1500)]
GIFTCARDS = str(Path(sys.executable).with_name("giftcards"))


def received_cards(project: str, into: Path) -> dict[str, tuple[str, str]]:
    """The card e-mails the stack's mail server accepted: card id -> (recipient, code)."""
    podman("cp", f"{project}_mail_1:/var/mail/giftcards/received", str(into / "received"))
    messages = [read_eml(path) for path in sorted((into / "received").glob("*.eml"))]
    return {message_parts(message)[0]: (str(message["To"]), code_in(message))
            for message in messages if message_parts(message)[2] == "card"}


def test_r1_r11_compose_stack_sells_and_redeems_a_card_and_publishes_both(
    stack: Stack, tmp_path: Path,
) -> None:
    project, env = stack
    # Both replicas up: the schema, the topics (RF 3) and one active relay.
    status = until("an active relay", lambda: (s := giftcards(project, "serve-2", "status"))[0]
                   == 0 and s[1]["relay"]["active_instance"] and s)
    code, bought = giftcards(project, "serve-1", "purchase", "--market", "FR", "--amount", "50",
                             "--payment-method", "card", "--buyer-id", "C1", "--order-id", "O1",
                             "--buyer-email", "c1@example.org")
    assert code == 0, bought
    # A card bought on the other replica: whichever replica's delivery worker holds the lease,
    # one of the two codes was sealed by the other one (one KEK ring for the deployment, R7).
    code, other = giftcards(project, "serve-2", "purchase", "--market", "FR", "--amount", "20",
                            "--payment-method", "card", "--buyer-id", "C2", "--order-id", "O4",
                            "--buyer-email", "c2@example.org")
    assert code == 0, other
    code, redeemed = giftcards(project, "serve-2", "redeem", "--code", bought["code"],
                               "--market", "FR", "--order-id", "O2", "--order-total", "80")
    assert code == 0, redeemed
    code, again = giftcards(project, "serve-1", "redeem", "--code", bought["code"],
                            "--market", "FR", "--order-id", "O3", "--order-total", "80")
    assert code == 1 and again["error"]["code"] == "already_redeemed", again
    # Every stored event relayed to the 3-broker cluster: the relay's lag drops to 0; both code
    # e-mails sent (none pending, none failed).
    status = until("relay lag 0 and both codes delivered",
                   lambda: (s := giftcards(project, "serve-1", "status"))[0] == 0
                   and s[1]["relay"]["lag"] == 0 and s[1]["relay"]["last_stored_position"] > 0
                   and s[1]["deliveries_pending"] == 0 and s[1], timeout=180)
    assert status["dead_letters"] == 0, status
    code, failures = giftcards(project, "serve-2", "deliveries", "failed")
    assert code == 0 and failures["count"] == 0, failures
    code, card = giftcards(project, "serve-2", "show", bought["card_id"])
    assert code == 0 and card["status"] == "redeemed", card
    # Both code e-mails reached the mail container over STARTTLS, each with its card's code.
    assert received_cards(project, tmp_path) == {
        bought["card_id"]: ("c1@example.org", bought["code"]),
        other["card_id"]: ("c2@example.org", other["code"]),
    }
    # PostgreSQL takes no login without TLS, even with the right password.
    plain = podman("exec", f"{project}_serve-1_1", "python", "-c",
                   "import psycopg; psycopg.connect('postgresql://giftcards:"
                   f"{env['POSTGRES_PASSWORD']}@pg-1:5432/giftcards?sslmode=disable')",
                   check=False, capture=True)
    assert plain.returncode != 0 and "no pg_hba.conf entry" in plain.stderr, plain.stderr
    # The brokers take no plaintext client, nor a SASL_SSL one with a wrong password.
    for options in ("", ", security_protocol='SASL_SSL', sasl_mechanism='SCRAM-SHA-512', "
                    "sasl_plain_username='giftcards', sasl_plain_password='wrong', "
                    "ssl_cafile='/etc/giftcards/tls/ca.pem'"):
        client = podman("exec", f"{project}_serve-1_1", "python", "-c",
                        "from kafka import KafkaAdminClient; KafkaAdminClient(bootstrap_servers="
                        f"'kafka-1:9092', request_timeout_ms=5000{options})",
                        check=False, capture=True)
        assert client.returncode != 0 and "Unable to bootstrap" in client.stderr, client.stderr
    # The signing key `keys` created is every replica's: a checkpoint signed on serve-2.
    code, signed = giftcards(project, "serve-2", "audit", "checkpoint")
    assert code == 0 and signed["ok"], signed
    # The HTTP API on serve-1, published on this host: a lookup of the other card.
    api = f"http://127.0.0.1:{env['GIFTCARDS_API_PORT']}"
    until("the API ready", lambda: http("GET", f"{api}/health/ready")[0] == 200, timeout=120)
    code, created = giftcards(project, "serve-2", "api-key", "create", "--name", "shop",
                              "--scope", "checkout")
    assert code == 0, created
    answer, found = http("POST", f"{api}/v1/cards/lookup",
                         {"code": other["code"], "market": "FR"}, created["key"])
    assert answer == 200 and found["card_id"] == other["card_id"], (answer, found)


@pytest.fixture(scope="module")
def podman_docker_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """podman's Docker-compatible API on a socket of this run's own (`podman system service`):
    the DOCKER_HOST that testcontainers, the Docker SDK and users' Docker tooling talk to."""
    sock = tmp_path_factory.mktemp("podman") / "docker.sock"
    service = subprocess.Popen(["podman", "system", "service", "--time=0", f"unix://{sock}"],
                               env=podman_env())
    try:
        until("podman's API socket", lambda: sock.exists(), timeout=30)
        yield f"unix://{sock}"
    finally:
        service.terminate()
        service.wait(30)


def test_testcontainers_runs_the_locally_built_postgres_image_through_podman(
    podman_docker_api: str,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    """The path users with Docker take (dev/services.py starts containers with testcontainers),
    here against podman's API and the image `make images` built: a card bought on it."""
    from testcontainers.core.config import ConnectionMode, testcontainers_config
    from testcontainers.core.container import DockerContainer
    from testcontainers.core.waiting_utils import wait_for_logs

    build()
    monkeypatch.setenv("DOCKER_HOST", podman_docker_api)
    monkeypatch.setattr(testcontainers_config, "ryuk_disabled", True)  # no reaper image here
    # Published ports on this host: testcontainers takes this machine for a container and
    # would ask podman for a gateway, which podman 4.3's container list does not report.
    monkeypatch.setattr(testcontainers_config, "connection_mode_override",
                        ConnectionMode.docker_host)
    password = secrets.token_hex(8)
    container = (DockerContainer("localhost/giftcards-postgres:15")
                 .with_env("POSTGRES_USER", "giftcards").with_env("POSTGRES_DB", "giftcards")
                 .with_env("POSTGRES_PASSWORD", password).with_exposed_ports(5432))
    with container:
        wait_for_logs(container, "database system is ready to accept connections", timeout=120)
        host, port = container.get_container_host_ip(), container.get_exposed_port(5432)
        url = f"postgresql://giftcards:{password}@{host}:{port}/giftcards"
        env = {"GIFTCARDS_DATABASE_URL": url,
               "GIFTCARDS_SECRET_KEY": secrets.token_urlsafe(48),
               "GIFTCARDS_DATA_DIR": str(tmp_path_factory.mktemp("tc"))}
        bought = until("a purchase on the container's database", lambda: (done := subprocess.run(
            [GIFTCARDS, "--json", "purchase", "--market", "FR", "--amount", "20",
             "--payment-method", "card", "--buyer-id", "T1", "--order-id", "T1"],
            env={**os.environ, **env}, capture_output=True, check=False)).returncode == 0
            and orjson.loads(done.stdout), timeout=60)
        assert bought["status"] == "active" and bought["code"], bought
