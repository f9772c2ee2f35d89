"""Builds the container images locally with podman, no registry: a Debian base from debootstrap
(cached under .cache/containers/), then Kafka (the tests' jars), PostgreSQL, Patroni and the
service."""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

from dev import kafka_dev

ROOT = Path(__file__).resolve().parent.parent
CACHE = ROOT / ".cache" / "containers"
CONF = ROOT / "containers" / "containers.conf"
WHEELS = ROOT / "containers" / "wheels"
SUITE = "bookworm"
MIRROR = os.environ.get("DEBIAN_MIRROR", "http://deb.debian.org/debian")
# Everything the images run: one base, so it is built (and cached) once. The database nodes run
# PostgreSQL under Patroni over etcd (python3-etcd named: debootstrap takes Depends' first
# alternative only when it is listed).
BASE_PACKAGES = (
    "python3,python3-venv,openjdk-17-jre-headless,postgresql-15,ca-certificates,procps,"
    "patroni,python3-etcd,etcd-server"
)
# Tagged by its package list, so that a changed list gives a new base, never the old one.
BASE = (f"localhost/giftcards-base:{SUITE}-"
        f"{hashlib.sha256(BASE_PACKAGES.encode()).hexdigest()[:12]}")
IMAGES = {
    f"localhost/giftcards-kafka:{kafka_dev.KAFKA_VERSION}": "containers/kafka/Dockerfile",
    "localhost/giftcards-postgres:15": "containers/postgres/Dockerfile",
    # The stack's database nodes (PostgreSQL under Patroni) and its etcd.
    "localhost/giftcards-patroni:15": "containers/patroni/Dockerfile",
    "localhost/giftcards:latest": "Dockerfile",
    # The stack's one-shot certificate step and its STARTTLS mail server.
    "localhost/giftcards-certs:latest": "containers/certs/Dockerfile",
    "localhost/giftcards-mail:latest": "containers/mail/Dockerfile",
}
# The mail server's own packages (the tests' SMTP server), beside the service's wheels.
MAIL_PACKAGES = ("aiosmtpd>=1.4",)


def podman_env() -> dict[str, str]:
    """podman with this repository's engine settings (runc, cgroupfs, ulimits)."""
    return {**os.environ, "CONTAINERS_CONF": str(CONF)}


def podman(
    *args: str, check: bool = True, capture: bool = False
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["podman", *args], env=podman_env(), check=check, text=True,
                          capture_output=capture)


def image_exists(name: str) -> bool:
    return podman("image", "exists", name, check=False).returncode == 0


def base_image() -> None:
    """debootstrap once into .cache (the tarball is the cache), `podman import` when missing."""
    tarball = CACHE / f"base-{SUITE}-{_digest(BASE_PACKAGES)}.tar"
    if not tarball.exists():
        rootfs = CACHE / "rootfs.partial"
        shutil.rmtree(rootfs, ignore_errors=True)
        CACHE.mkdir(parents=True, exist_ok=True)
        subprocess.run(["debootstrap", "--variant=minbase", f"--include={BASE_PACKAGES}",
                        SUITE, str(rootfs), MIRROR], check=True, stdout=subprocess.DEVNULL)
        # No downloaded packages in the image: it is rebuilt, never upgraded in place.
        for deb in (rootfs / "var/cache/apt/archives").glob("*.deb"):
            deb.unlink()
        partial = tarball.with_suffix(".partial")
        subprocess.run(["tar", "-C", str(rootfs), "-cf", str(partial), "."], check=True)
        partial.rename(tarball)
        shutil.rmtree(rootfs, ignore_errors=True)
    if not image_exists(BASE):
        podman("import", "--change", "CMD /bin/bash", str(tarball), BASE)


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def wheels() -> None:
    """The service's wheels, its build backend and the mail server's packages, so that the
    images build without an index. The dependencies are fetched again only when pyproject.toml
    or MAIL_PACKAGES changed (the image builds the project itself from its sources)."""
    WHEELS.mkdir(parents=True, exist_ok=True)
    pip = [sys.executable, "-m", "pip", "-q", "--disable-pip-version-check"]
    pyproject = (ROOT / "pyproject.toml").read_text()
    stamp = WHEELS / f".deps-{_digest(pyproject + ' '.join(MAIL_PACKAGES))}"
    if not stamp.exists():
        subprocess.run([*pip, "wheel", "-w", str(WHEELS), str(ROOT)], check=True)
        subprocess.run([*pip, "download", "-d", str(WHEELS), "setuptools>=68", "wheel",
                        *MAIL_PACKAGES], check=True)
        stamp.touch()


def build() -> None:
    """Every image; podman's layer cache makes an unchanged one a matter of seconds."""
    base_image()
    kafka_dev.ensure_jars()
    wheels()
    for name, dockerfile in IMAGES.items():
        podman("build", "--network", "none", "--build-arg", f"BASE={BASE}",
               "--build-arg", "PIP_NO_INDEX=1", "-f", dockerfile, "-t", name, str(ROOT))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m dev.containers", description=__doc__)
    parser.add_argument("command", choices=("base", "build"))
    args = parser.parse_args(argv)
    try:
        base_image() if args.command == "base" else build()
    except (subprocess.CalledProcessError, FileNotFoundError, RuntimeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
