"""The UI in a real browser: collected only by `make test-integration` (XZ_INTEGRATION=1), never by `make test`.

`xz dev` serves a tiny sandbox world on free ports; Selenium drives Debian's chromium through its matching
chromium-driver (both from apt, `make test-integration` installs them). Screenshots are kept under
`$XZ_HOME/ui/` (default `./.xz/integration/ui/`), and the dev server's output in `$XZ_HOME/dev.log`.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

REPO = Path(__file__).resolve().parents[2]
collect_ignore_glob = [] if os.environ.get("XZ_INTEGRATION") == "1" else ["test_*.py"]
CHROMIUM = os.environ.get("XZ_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("XZ_CHROMEDRIVER", "/usr/bin/chromedriver")
UP_TIMEOUT = 120.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Dev:
    """A running `xz dev`: its UI's URL, its XZ_HOME and the process."""

    url: str
    home: Path
    proc: subprocess.Popen

    def graphql(self, query: str, variables: dict | None = None) -> dict:
        answer = requests.post(
            f"{self.url}/graphql", json={"query": query, "variables": variables or {}}, timeout=30
        )
        answer.raise_for_status()
        body = answer.json()
        assert "errors" not in body, body["errors"]
        return body["data"]

    @property
    def shots(self) -> Path:
        return self.home / "ui"


@pytest.fixture(scope="module")
def dev() -> Dev:
    """`xz dev --size tiny` on free ports in a fresh XZ_HOME; stopped with SIGTERM at the end, which must end
    it and every process it started."""
    home = Path(os.environ.get("XZ_INTEGRATION_HOME", REPO / ".xz" / "integration"))
    shutil.rmtree(home, ignore_errors=True)
    (home / "ui").mkdir(parents=True)
    port = free_port()
    xz = Path(sys.executable).with_name("xz")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("XERO_", "ZOHO_", "XZ_", "DAGSTER_"))}
    env["XZ_HOME"] = str(home)
    log = (home / "dev.log").open("wb")
    proc = subprocess.Popen(
        [str(xz), "dev", "--size", "tiny", "--port", str(port)],
        env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    server = Dev(f"http://127.0.0.1:{port}", home, proc)
    try:
        deadline = time.monotonic() + UP_TIMEOUT
        while True:
            assert proc.poll() is None, f"xz dev exited with {proc.returncode}: see {home / 'dev.log'}"
            try:
                if requests.get(f"{server.url}/server_info", timeout=2).ok:
                    break
            except requests.ConnectionError:
                pass
            assert time.monotonic() < deadline, f"the UI did not come up within {UP_TIMEOUT:.0f}s"
            time.sleep(1)
        yield server
    finally:
        code = _stop(proc)
        log.close()
    assert code == 0, f"xz dev exited with {code} on SIGTERM"
    leftovers = _session_processes(proc.pid, wait=60)
    assert not leftovers, f"processes outlived xz dev: {leftovers}"


def _stop(proc: subprocess.Popen) -> int | None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            return proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            return None
    return proc.returncode


def _session_processes(sid: int, wait: float) -> list[str]:
    """The processes still in the dev server's session, after up to `wait` seconds for them to end (a code
    server finishes its last request first)."""
    deadline = time.monotonic() + wait
    while True:
        left = subprocess.run(
            ["pgrep", "-a", "-s", str(sid)], capture_output=True, text=True
        ).stdout.splitlines()
        if not left or time.monotonic() > deadline:
            if left:
                subprocess.run(["pkill", "-KILL", "-s", str(sid)], check=False)
            return left
        time.sleep(1)


@pytest.fixture(scope="module")
def browser():
    """Headless chromium driven by chromium-driver of the same version; nothing is downloaded (Selenium
    Manager is told where both are and to stay offline)."""
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    for path in (CHROMIUM, CHROMEDRIVER):
        if not Path(path).exists():
            pytest.fail(f"{path} is missing: `make test-integration` installs chromium and chromium-driver")
    os.environ["SE_OFFLINE"] = "true"
    options = Options()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1600,1000"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.implicitly_wait(10)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture(scope="session")
def postgres():
    """A throwaway PostgreSQL on a free loopback port (Debian's postgresql; initdb as `nobody` when root),
    stopped and removed at the end of the session, failure or not."""
    from xz_pipeline.deploy import local

    with local.postgres() as server:
        yield server


@pytest.fixture(scope="module")
def redis_server():
    """A throwaway redis-server on a free loopback port, nothing saved; stopped at the end of the module."""
    from xz_pipeline.deploy import local

    with local.redis() as server:
        yield server
