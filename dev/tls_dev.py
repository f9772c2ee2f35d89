"""Throwaway certificates for the dev launchers and the tests, made with openssl: a CA, server
certificates for loopback signed by it, and a PKCS12 keystore of one for the Kafka broker."""

from __future__ import annotations

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
