"""The docs set: it builds with every link checked, its reference is the code's, and
its quickstarts run as written (Kafka with kcat, analytics reading what was published, HTTP with
curl, auditors with the CLI)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from kafka import KafkaAdminClient

from dev import docs_gen
from dev.services import unique_topic_prefix
from infra.kafka.topics import Topics
from tests.conftest import SECRET

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
GIFTCARDS = str(BIN / "giftcards")


def bash_blocks(page: str) -> list[str]:
    """The page's ```bash blocks: the commands a reader runs (```text ones are shown only)."""
    text = (ROOT / "docs" / page).read_text(encoding="utf-8")
    return re.findall(r"```bash\n(.*?)```", text, flags=re.S)


def clean_env(tmp_path: Path) -> dict[str, str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("GIFTCARDS_", "KAFKA_"))}
    return {**clean, "GIFTCARDS_DATA_DIR": str(tmp_path / "var"), "GIFTCARDS_SECRET_KEY": SECRET,
            "PATH": f"{BIN}:{os.environ.get('PATH', '')}"}


def run_block(block: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", "-e", "-o", "pipefail", "-c", block], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=120, check=False)


@pytest.fixture(scope="session")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The docs built once per session, strict: a broken link or anchor fails the build."""
    out = tmp_path_factory.mktemp("site")
    built = subprocess.run([str(BIN / "mkdocs"), "build", "--strict", "-d", str(out)], cwd=ROOT,
                           capture_output=True, text=True, timeout=300, check=False,
                           env={**os.environ, "NO_MKDOCS_2_WARNING": "1"})
    assert built.returncode == 0, built.stdout[-3000:] + built.stderr[-3000:]
    return out


def test_the_docs_build_with_every_link_checked(site: Path) -> None:
    for page in ("quickstart/kafka", "quickstart/http", "quickstart/analytics",
                 "quickstart/auditors", "operations", "troubleshooting", "reference/cli",
                 "reference/configuration", "reference/topics", "reference/errors",
                 "reference/http-api"):
        assert (site / page / "index.html").exists(), page
    assert (site / "reference" / "openapi.json").exists()
    assert "broken" not in (ROOT / "mkdocs.yml").read_text()
    assert "strict: true" in (ROOT / "mkdocs.yml").read_text()


def test_the_generated_reference_is_the_codes() -> None:
    """`python -m dev.docs_gen` was run after the last change to the CLI, the settings, the
    schemas, the error codes or the HTTP API."""
    stale = [name for name, text in docs_gen.pages().items()
             if (docs_gen.REFERENCE / name).read_text(encoding="utf-8") != text]
    assert not stale, f"stale: {stale}; run `python -m dev.docs_gen`"


def test_every_error_code_has_its_retry_answer() -> None:
    missing = docs_gen.codes_in_code() - set(docs_gen.CATALOGUE)
    assert not missing, f"codes without a line in dev/docs_gen.CATALOGUE: {sorted(missing)}"


def test_the_auditors_quickstart_runs_as_written(tmp_path: Path) -> None:
    [block] = bash_blocks("quickstart/auditors.md")
    done = run_block(block, tmp_path, clean_env(tmp_path))
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert "Traceback" not in done.stdout + done.stderr
    assert re.search(r"ok\s+yes", done.stdout), done.stdout  # audit verify, verify-pack
    assert re.search(r"FR\s+EUR\s+50,00\s€", done.stdout), done.stdout


def test_the_http_quickstart_runs_as_written(tmp_path: Path) -> None:
    """The HTTP quickstart's curl walk-through (it was the README's), against `giftcards api`."""
    from tests.e2e.test_http_api import start_api

    [block] = bash_blocks("quickstart/http.md")
    env = {**clean_env(tmp_path), "GIFTCARDS_DATABASE_URL": f"sqlite:///{tmp_path / 'h.db'}"}
    process, url = start_api(env, tmp_path / "api.log")
    try:
        done = run_block(block, tmp_path, {**env, "API": url})
    finally:
        process.terminate()
        process.wait(timeout=30)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert '"code":"card_on_hold"' in done.stdout  # the README's walk-through, moved here
    assert '"applied":5000' in done.stdout and '"remaining_to_pay":3000' in done.stdout


def test_the_kafka_quickstart_runs_as_written_with_kcat(
    tmp_path: Path, kafka_bootstrap: str
) -> None:
    """A real `order.checkout` message produced by kcat, the reply read back by kcat."""
    subprocess.run(["make", "-s", "kcat"], cwd=ROOT, check=True, timeout=600)
    topics = Topics(unique_topic_prefix())
    env = {**clean_env(tmp_path), "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
           "GIFTCARDS_TOPIC_PREFIX": topics.prefix, "GIFTCARDS_PARTITIONS": "1",
           "GIFTCARDS_DATABASE_URL": f"sqlite:///{tmp_path / 'k.db'}"}
    log = tmp_path / "serve.log"
    with log.open("wb") as out:
        serve = subprocess.Popen([GIFTCARDS, "serve", "--without-projections"], env=env,
                                 stdout=out, stderr=out)
    try:
        admin = KafkaAdminClient(bootstrap_servers=kafka_bootstrap)
        deadline = time.monotonic() + 60
        while not set(topics.configs()) <= set(admin.list_topics()):
            assert time.monotonic() < deadline and serve.poll() is None, log.read_text()[-3000:]
            time.sleep(0.5)
        admin.close()
        [block] = bash_blocks("quickstart/kafka.md")
        done = run_block(block, tmp_path, env)
        # The analytics quickstart reads what the relay published of that purchase, from the
        # repository's folder as the page says, each record checked against its schema.
        [analytics] = bash_blocks("quickstart/analytics.md")
        deadline = time.monotonic() + 60
        while True:
            read = run_block(analytics, ROOT, env)
            if "GiftCardPurchased" in read.stdout or time.monotonic() > deadline:
                break
            time.sleep(1)
    finally:
        serve.send_signal(signal.SIGTERM)
        serve.wait(timeout=60)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:] + log.read_text()[
        -2000:]
    assert done.stdout.startswith("quick-1 ") and '"message_id":"quick-m1"' in done.stdout
    assert read.returncode == 0, read.stdout[-2000:] + read.stderr[-2000:]
    assert "GiftCardPurchased" in read.stdout and "GiftCardActivated" in read.stdout, read.stdout
