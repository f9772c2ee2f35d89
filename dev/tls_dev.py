"""Throwaway certificates for the dev launchers and the tests, made with openssl: a CA, server
certificates for loopback signed by it, and a PKCS12 keystore of one for the Kafka broker."""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

# Certificates of a throwaway CA, valid for a few days: the launchers make new ones as needed.
DAYS = "7"
LOOPBACK = ("127.0.0.1", "localhost")


@dataclass(frozen=True)
class Ca:
    cert: Path
    key: Path


@dataclass(frozen=True)
class ServerCert:
    cert: Path
    key: Path  # PKCS#8, unencrypted, 0600
    ca: Path

    def pkcs12(self, password: str) -> Path:
        """The key and certificate as a PKCS12 keystore (what a Java server loads)."""
        store = self.cert.with_suffix(".p12")
        _openssl("pkcs12", "-export", "-in", str(self.cert), "-inkey", str(self.key),
                 "-out", str(store), "-passout", f"pass:{password}", "-name", "server")
        store.chmod(0o600)
        return store


def _openssl(*args: str) -> None:
    openssl = shutil.which("openssl")
    if openssl is None:
        raise RuntimeError("openssl is required to make the dev certificates")
    result = subprocess.run([openssl, *args], capture_output=True, text=True, timeout=60)
    if result.returncode != 0:
        raise RuntimeError(f"openssl {args[0]} failed:\n{result.stderr}")


def _new_key(path: Path) -> None:
    _openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256",
             "-out", str(path))
    path.chmod(0o600)


def make_ca(directory: Path, name: str = "giftcards-dev-ca") -> Ca:
    directory.mkdir(parents=True, exist_ok=True)
    ca = Ca(directory / f"{name}.pem", directory / f"{name}.key")
    _new_key(ca.key)
    _openssl("req", "-x509", "-new", "-key", str(ca.key), "-out", str(ca.cert), "-days", DAYS,
             "-subj", f"/CN={name}",
             "-addext", "basicConstraints=critical,CA:TRUE",
             "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    return ca


def issue(ca: Ca, directory: Path, name: str, hosts: tuple[str, ...] = LOOPBACK) -> ServerCert:
    """A server certificate for `hosts` (IP addresses and DNS names), signed by `ca`."""
    directory.mkdir(parents=True, exist_ok=True)
    server = ServerCert(directory / f"{name}.pem", directory / f"{name}.key", ca.cert)
    _new_key(server.key)
    request = directory / f"{name}.csr"
    _openssl("req", "-new", "-key", str(server.key), "-out", str(request), "-subj", f"/CN={name}")
    names = ",".join(f"IP:{h}" if h[0].isdigit() or ":" in h else f"DNS:{h}" for h in hosts)
    extensions = directory / f"{name}.ext"
    extensions.write_text(
        f"subjectAltName={names}\n"
        "basicConstraints=critical,CA:FALSE\n"
        "keyUsage=critical,digitalSignature,keyEncipherment\n"
        "extendedKeyUsage=serverAuth\n"
        "subjectKeyIdentifier=hash\n"
        "authorityKeyIdentifier=keyid,issuer\n"
    )
    _openssl("x509", "-req", "-in", str(request), "-CA", str(ca.cert), "-CAkey", str(ca.key),
             "-CAcreateserial", "-out", str(server.cert), "-days", DAYS,
             "-extfile", str(extensions))
    request.unlink()
    return server


REPO_ROOT = Path(__file__).resolve().parent.parent


def dev_dir() -> Path:
    """Where the dev launchers keep their CA and certificates (TLS_DEV_HOME, else .cache/tls)."""
    return Path(os.environ.get("TLS_DEV_HOME", REPO_ROOT / ".cache" / "tls")).resolve()


def dev_ca() -> Ca:
    """The dev CA, made once and shared by the dev broker and the dev PostgreSQL."""
    directory = dev_dir()
    ca = Ca(directory / "giftcards-dev-ca.pem", directory / "giftcards-dev-ca.key")
    if ca.cert.exists() and ca.key.exists() and _valid_for_a_day(ca.cert):
        return ca
    return make_ca(directory)


def dev_server(name: str) -> ServerCert:
    """The dev server certificate `name` for loopback, made once per dev CA."""
    ca = dev_ca()
    server = ServerCert(dev_dir() / f"{name}.pem", dev_dir() / f"{name}.key", ca.cert)
    if server.cert.exists() and _valid_for_a_day(server.cert) and _signed_by(server.cert, ca):
        return server
    return issue(ca, dev_dir(), name)


def dev_secret(name: str) -> str:
    """A password the dev launchers made once and keep (0600) beside the certificates."""
    path = dev_dir() / f"{name}.secret"
    if not path.exists():
        dev_dir().mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_urlsafe(24))
    return path.read_text().strip()


def _valid_for_a_day(cert: Path) -> bool:
    done = subprocess.run(["openssl", "x509", "-checkend", "86400", "-noout", "-in", str(cert)],
                          capture_output=True, timeout=60)
    return done.returncode == 0


def _signed_by(cert: Path, ca: Ca) -> bool:
    done = subprocess.run(["openssl", "verify", "-CAfile", str(ca.cert), str(cert)],
                          capture_output=True, timeout=60)
    return done.returncode == 0
