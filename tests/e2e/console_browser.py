"""The console as an operator sees it: a real `giftcards console` process on PostgreSQL, a real
SMTP server, and Debian's Chromium driven headless by Selenium (one browser per module)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from selenium import webdriver
from selenium.common.exceptions import WebDriverException
from selenium.webdriver.chrome.service import Service as Driver
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support.wait import WebDriverWait

from application.operators import Operators
from infra.bootstrap import build
from infra.config import load_settings
from infra.service import Service
from tests.conftest import SECRET
from tests.mail.inbox import SmtpServer, free_port

ROOT = Path(__file__).resolve().parents[2]
GIFTCARDS = str(Path(sys.executable).with_name("giftcards"))
CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
# Screenshots of each run (gitignored); with CONSOLE_DOCS_SCREENSHOTS=1 also the docs' copies
# (docs/console/img/, committed), so the pages show what the tests saw.
ARTIFACTS = ROOT / "artifacts" / "console"
DOCS_IMAGES = ROOT / "docs" / "console" / "img"
IDLE_SECONDS = 6.0  # the server's idle timeout: the expiry test waits it out on a real clock


@dataclass
class Console:
    url: str
    env: dict[str, str]
    browser: WebDriver
    smtp: SmtpServer
    keys: dict[str, str]  # operator name → their key
    log: Path

    def service(self) -> Service:
        return build(load_settings(self.env), create_tables=False)

    def open(self, path: str) -> None:
        self.browser.get(self.url + path)

    def sign_in(self, name: str, lang: str = "en") -> None:
        """A fresh browser state (no cookie of anyone else), then the sign-in form."""
        self.browser.delete_all_cookies()
        self.open("/console/sign-in")
        self.browser.find_element(By.ID, "key").send_keys(self.keys[name])
        self.browser.find_element(By.CSS_SELECTOR, f"#lang option[value='{lang}']").click()
        self.click("sign-in")
        assert name in self.text("who")

    def text(self, element_id: str) -> str:
        return str(self.browser.find_element(By.ID, element_id).text)

    def fill(self, fields: dict[str, str]) -> None:
        """Types each value into the field of that id, as the operator would."""
        for element_id, value in fields.items():
            box = self.browser.find_element(By.ID, element_id)
            box.clear()
            box.send_keys(value)

    def click(self, element_id: str) -> None:
        """Clicks a button that submits its form and waits for the next page to be there."""
        self.press(self.browser.find_element(By.ID, element_id))

    def press(self, button: WebElement) -> None:
        """A mark on this document; the next one has none (asked again while it loads)."""
        self.browser.execute_script("window.consoleTestPage = true")
        button.click()
        WebDriverWait(self.browser, 30, ignored_exceptions=(WebDriverException,)).until(
            lambda b: b.execute_script(
                "return !window.consoleTestPage && document.readyState === 'complete'"))

    def wait_for_chart(self, element_id: str) -> None:
        """The chart was drawn from the JSON (not failed), and its canvas is not blank."""
        chart = self.browser.find_element(By.ID, element_id)
        wait_until(lambda: chart.get_attribute("data-drawn"), f"{element_id} was not drawn")
        assert chart.get_attribute("data-drawn") == "true"
        blank = self.browser.execute_script(
            "const c = arguments[0], b = document.createElement('canvas');"
            "b.width = c.width; b.height = c.height; return c.toDataURL() === b.toDataURL();",
            chart)
        assert blank is False, f"{element_id} is blank"

    def shot(self, name: str) -> Path:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        path = ARTIFACTS / f"{name}.png"
        self.browser.save_screenshot(str(path))
        if os.environ.get("CONSOLE_DOCS_SCREENSHOTS") == "1":
            DOCS_IMAGES.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, DOCS_IMAGES / path.name)
        return path


def chromium() -> WebDriver:
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                 "--window-size=1280,900", "--lang=en"):
        options.add_argument(flag)
    return webdriver.Chrome(service=Driver(executable_path=CHROMEDRIVER), options=options)


def start(env: dict[str, str], log: Path, *args: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen([GIFTCARDS, *args], env=env, stdout=log.open("ab"),
                            stderr=subprocess.STDOUT)


def wait_until(condition: Any, what: str, timeout: float = 60.0) -> Any:
    deadline = time.monotonic() + timeout
    while not (found := condition()):
        assert time.monotonic() < deadline, what
        time.sleep(0.1)
    return found


@pytest.fixture(scope="module")
def console(tmp_path_factory: pytest.TempPathFactory, postgres_server: str) -> Iterator[Console]:
    from dev.services import drop_postgres_database, fresh_postgres_database

    tmp = tmp_path_factory.mktemp("console")
    url = fresh_postgres_database(postgres_server)
    smtp = SmtpServer(tmp / "smtp")
    smtp.start()
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("GIFTCARDS_", "KAFKA_"))}
    env = {**clean, "GIFTCARDS_DATA_DIR": str(tmp / "var"), "GIFTCARDS_DATABASE_URL": url,
           "GIFTCARDS_SECRET_KEY": SECRET, "GIFTCARDS_CHAIN_KEY_FILE": str(tmp / "chain.key"),
           "GIFTCARDS_SMTP_URL": smtp.url, "GIFTCARDS_CONSOLE_IDLE_SECONDS": str(IDLE_SECONDS)}
    service = build(load_settings(env))
    operators = Operators(service.app)
    keys = {"root": operators.add("root", "admin", None)["key"]}
    admin = operators.authenticate(keys["root"])
    for name, role in (("sam", "support"), ("dora", "dpo"), ("ava", "auditor")):
        keys[name] = operators.add(name, role, admin)["key"]
    service.close()
    log = tmp / "console.log"
    port = free_port()
    processes = [start(env, log, "console", "--port", str(port))]
    base = f"http://127.0.0.1:{port}"

    def up() -> bool:
        assert processes[0].poll() is None, log.read_text()
        try:
            return httpx.get(base + "/health/ready", timeout=2).status_code == 200
        except httpx.TransportError:
            return False

    browser = None
    try:
        wait_until(up, "the console did not come up")
        processes.append(start(env, log, "deliver"))
        browser = chromium()
        yield Console(base, env, browser, smtp, keys, log)
    finally:
        if browser is not None:
            browser.quit()
        for process in processes:
            process.terminate()
        for process in processes:
            process.wait(timeout=30)
        smtp.stop()
        drop_postgres_database(url)
    text = log.read_text()
    assert "Traceback" not in text, text
    assert "@example.org" not in text  # no personal data in the console's log
    for secret in keys.values():
        assert secret not in text
