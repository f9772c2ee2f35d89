"""Directories holding personal data or keys are 0700: the data dir (also when the maildir
creates it), the maildir, checkpoint directories, and the dev PostgreSQL's home and server log;
an older directory left open to others is closed when it is next used."""

from __future__ import annotations

import shutil
import stat
import tempfile
from pathlib import Path

from dev import pg_dev
from infra.bootstrap import Service, build
from infra.checkpoints import load_signing_key
from infra.config import load_settings
from infra.mail.transport import transport_for


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def elsewhere(tmp_path: Path) -> Service:
    """A service whose vault seals the maildir's messages, its store in a directory of its own."""
    return build(load_settings({"GIFTCARDS_DATA_DIR": str(tmp_path / "store")}))


def test_data_dir_maildir_and_checkpoint_dirs_are_0700(tmp_path: Path) -> None:
    data = tmp_path / "var"
    service = elsewhere(tmp_path)
    try:
        transport_for(None, data, service.vault)  # the maildir is the first to need the data dir
    finally:
        service.close()
    assert mode(data) == 0o700
    assert {p.name: mode(p) for p in [data / "mail", *(data / "mail").iterdir()]} == {
        "mail": 0o700, "tmp": 0o700, "new": 0o700, "cur": 0o700}

    fresh = tmp_path / "fresh"
    load_settings({"GIFTCARDS_DATA_DIR": str(fresh)})  # the dev key is written into it
    assert mode(fresh) == 0o700

    load_signing_key(tmp_path / "keys" / "checkpoints" / "signing.pem", create=True)
    assert mode(tmp_path / "keys") == mode(tmp_path / "keys" / "checkpoints") == 0o700


def test_an_older_open_maildir_is_closed_when_used(tmp_path: Path) -> None:
    (tmp_path / "mail" / "new").mkdir(parents=True, mode=0o755)
    (tmp_path / "mail").chmod(0o755)
    service = elsewhere(tmp_path)
    try:
        transport_for(None, tmp_path, service.vault)
    finally:
        service.close()
    assert mode(tmp_path / "mail") == mode(tmp_path / "mail" / "new") == 0o700


def test_the_dev_postgres_home_and_server_log_are_private() -> None:
    parent = Path(tempfile.mkdtemp(prefix="gc-pg-", dir=tempfile.gettempdir()))
    parent.chmod(0o711)  # like the system temp dir: the server user passes through
    home = parent / "h"
    try:
        cluster = pg_dev.Cluster(home=home, port=1)
        with pg_dev._locked(cluster):
            pg_dev._prepare_home(cluster)
        assert mode(home) == 0o711  # the server user passes through, no one lists it
        assert mode(cluster.log_file.parent) == 0o700
    finally:
        shutil.rmtree(home.parent, ignore_errors=True)
