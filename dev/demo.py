"""`make demo`: a card's whole lifecycle through the real `giftcards` CLI on embedded SQLite."""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson

DATA_DIR = Path(os.environ.get("GIFTCARDS_DEMO_DIR", "var/demo"))
CLI = [sys.executable, "-m", "entrypoints.cli"]
# What a user types: the installed command, from the checkout's venv (`make demo` made it).
SHOWN_CLI = ".venv/bin/giftcards"


def giftcards(*args: str, at: str | None, expect: int = 0, key_file: Path | None = None
              ) -> dict[str, Any]:
    """Run one CLI command at a pinned instant and show it the way a user would type it;
    `key_file`: the operator's key, as an operator passes it (R21)."""
    # The demo's store is the default one under its data dir (DATA_DIR/giftcards.sqlite3).
    env = {**os.environ, "GIFTCARDS_DATA_DIR": str(DATA_DIR)}
    for name in ("KAFKA_BOOTSTRAP_SERVERS", "GIFTCARDS_DATABASE_URL", "GIFTCARDS_NOW",
                 "GIFTCARDS_OPERATOR_KEY", "GIFTCARDS_OPERATOR_KEY_FILE"):
        env.pop(name, None)
    pinned = ""
    if at is not None:  # None: the real time
        env["GIFTCARDS_NOW"], pinned = at, f"GIFTCARDS_NOW={at} "
    operator = ""
    if key_file is not None:
        env["GIFTCARDS_OPERATOR_KEY_FILE"] = str(key_file)
        operator = f"GIFTCARDS_OPERATOR_KEY_FILE={shlex.quote(str(key_file))} "
    # Printed quoted, with its variables: pasted into a shell it runs as shown.
    print(f"\n$ GIFTCARDS_DATA_DIR={shlex.quote(str(DATA_DIR))} {pinned}{operator}"
          f"{shlex.join([SHOWN_CLI, *args, '--json'])}")
    done = subprocess.run(
        [*CLI, *args, "--json"], env=env, capture_output=True, text=True, check=False
    )
    result: dict[str, Any] = orjson.loads(done.stdout)
    print(f"exit {done.returncode}: {orjson.dumps(result, option=orjson.OPT_INDENT_2).decode()}")
    if done.returncode != expect:
        raise SystemExit(f"demo failed: expected exit {expect}, got {done.returncode}")
    return result


def show_mail(after: int = 0) -> None:
    """The e-mails the delivery worker wrote, as the buyer's mail client would show them: the
    maildir keeps each one sealed under its owner's key, opened here with the demo's vault."""
    from composition.bootstrap import build
    from infra.config import load_settings
    from infra.mail.transport import read_maildir

    env = {k: v for k, v in os.environ.items() if k.startswith("GIFTCARDS_")}
    env.pop("GIFTCARDS_DATABASE_URL", None)
    service = build(load_settings({**env, "GIFTCARDS_DATA_DIR": str(DATA_DIR)}))
    try:
        sent = read_maildir(DATA_DIR / "mail", service.vault)
    finally:
        service.close()
    for message in sent[after:]:
        body = message.get_body(preferencelist=("plain",))
        print(f"\n--- e-mail {message['Message-ID']}\nTo: {message['To']}\n"
              f"Subject: {message['Subject']}\n")
        print(body.get_content() if body is not None else "")


def main() -> None:
    shutil.rmtree(DATA_DIR, ignore_errors=True)
    DATA_DIR.mkdir(parents=True)
    print("A gift card's life on the FR platform (terms of 19 Nov 2025), SQLite store in", DATA_DIR)
    card = giftcards(
        "purchase", "--market", "FR", "--amount", "50", "--payment-method", "card",
        "--buyer-id", "C1", "--buyer-email", "alice@example.org",
        "--recipient-email", "bob@example.org", "--message", "Joyeux anniversaire",
        "--order-id", "O1", at="2026-01-10T09:00:00Z",
    )  # fmt: skip
    giftcards(
        "purchase", "--market", "FR", "--amount", "50", "--payment-method", "card",
        "--buyer-id", "C1", "--order-id", "O1", at="2026-01-10T09:01:00Z",
    )  # fmt: skip
    # R7: the code is also e-mailed to the buyer, from the sealed outbox (no GIFTCARDS_SMTP_URL:
    # the e-mails are sealed files in the data dir's maildir, opened below with its vault).
    giftcards("deliver", "--once", at="2026-01-10T09:02:00Z")
    show_mail()
    giftcards(
        "redeem", "--code", "WRONG-CODE-000", "--market", "FR", "--order-id", "O2",
        "--order-total", "80", "--customer-id", "C2", at="2026-01-12T10:00:00Z", expect=1,
    )  # fmt: skip
    # An order of 45 on a card of 50: single use (R11), the remaining 5 are forfeited.
    giftcards(
        "redeem", "--code", card["code"], "--market", "FR", "--order-id", "O2",
        "--order-total", "45", "--customer-id", "C2", at="2026-01-12T10:05:00Z",
    )  # fmt: skip
    giftcards(
        "cancel", "--order-id", "O1", "--code", card["code"], at="2026-01-13T10:00:00Z", expect=1,
    )  # fmt: skip
    refund = giftcards(
        "refund", "--order-id", "O2", "--amount", "45", "--received-on", "2026-01-14",
        "--customer-id", "C2", "--customer-email", "carl@example.org",  # R17: C2 returned it
        at="2026-02-10T10:00:00Z",
    )  # fmt: skip
    giftcards("deliver", "--once", at="2026-02-10T10:01:00Z")  # to C2, not to the gift's buyer
    show_mail(after=2)
    giftcards("show", card["card_id"], at="2026-02-10T10:00:00Z")
    giftcards("expire", at="2026-08-11T00:00:00Z")
    giftcards("show", refund["new_card"]["card_id"], at="2026-08-11T00:00:00Z")
    # Customer ids are personal data: an operator reads them with their own key, logged (R21).
    # The first admin needs only the service's secret; the admin's key adds the agent. Both
    # enrolled at the real time: their keys expire 90 days from today, not from the story's.
    admin_key, agent_key = DATA_DIR / "demo-admin.key", DATA_DIR / "demo-agent.key"
    giftcards("gdpr", "operator", "add", "demo-admin", "--role", "admin",
              "--key-file", str(admin_key), at=None)
    giftcards("gdpr", "operator", "add", "demo-agent", "--role", "support",
              "--key-file", str(agent_key), at=None, key_file=admin_key)
    giftcards("history", card["card_id"], at="2026-08-11T00:00:00Z", key_file=agent_key)
    # Finance and audit views, replayed from the same events.
    giftcards("liability", "--as-of", "2026-01-11T00:00:00Z", at="2026-08-11T00:00:00Z")
    giftcards("liability", at="2026-08-11T00:00:00Z")
    giftcards("breakage", at="2026-08-11T00:00:00Z")
    giftcards("audit", "verify", card["card_id"], at="2026-08-11T00:00:00Z")
    print("\nDemo complete: purchase, idempotent retry, code e-mails, refused unknown code,"
          " redemption (remainder forfeited), refused cancellation, refund as a new card and"
          " its e-mails, expiry, liability, breakage, audit.")
    print(f"\nThe demo's store stays in {DATA_DIR}. To look at it with the CLI:\n"
          f"  export GIFTCARDS_DATA_DIR={shlex.quote(str(DATA_DIR))}\n"
          f"  {SHOWN_CLI} show {card['card_id']}\n"
          # history shows customer ids: the key of an operator the demo registered (R21).
          f"  GIFTCARDS_OPERATOR_KEY_FILE={shlex.quote(str(agent_key))} "
          f"{SHOWN_CLI} history {card['card_id']}\n"
          f"  {SHOWN_CLI} --help")


if __name__ == "__main__":
    main()
