"""JupyterLab in a real headless browser: the OS-check notebook runs and shows its findings and host picker.

JupyterLab listens on loopback with a token; Debian's chromium (never a downloaded browser) is driven by
Playwright; every request that would leave 127.0.0.1 is blocked and recorded, and the test fails if there was one.
"""

import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
SCREENSHOTS = ROOT / "test-output" / "browser"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def jupyterlab(tmp_path_factory):
    token = secrets.token_hex(16)
    port = free_port()
    home = tmp_path_factory.mktemp("jupyter-home")
    served = tmp_path_factory.mktemp("served")  # a copy: JupyterLab autosaves, the committed notebooks stay clean
    shutil.copytree(ROOT / "notebooks", served / "notebooks", ignore=shutil.ignore_patterns("evidence", ".*"))
    env = {**os.environ, "JUPYTER_CONFIG_DIR": str(home / "config"), "JUPYTER_RUNTIME_DIR": str(home / "runtime"),
           "JUPYTERLAB_SETTINGS_DIR": str(home / "settings"), "JUPYTERLAB_WORKSPACES_DIR": str(home / "ws")}
    process = subprocess.Popen(
        [sys.executable, "-m", "jupyterlab", "--no-browser", f"--port={port}", "--ServerApp.ip=127.0.0.1",
         f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={served}", "--LabApp.news_url=",
         "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate", "--LabApp.extension_manager=readonly",
         "--ServerApp.port_retries=0", *(["--allow-root"] if hasattr(os, "geteuid") and os.geteuid() == 0 else [])],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, cwd=served)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(f"{url}/api/status?token={token}", timeout=2)
            break
        except OSError:
            if process.poll() is not None:
                raise RuntimeError(process.stdout.read().decode(errors="replace")[-2000:])
            time.sleep(0.5)
    else:
        process.kill()
        raise RuntimeError("JupyterLab did not start within 60 s")
    yield url, token
    process.terminate()
    try:
        process.wait(15)
    except subprocess.TimeoutExpired:
        process.kill()


def accept_kernel_dialog(page) -> None:
    """JupyterLab sometimes asks which kernel to start while the kernel specs load; the default is right."""
    dialog = page.locator(".jp-Dialog .jp-mod-accept")
    if dialog.count() and dialog.first.is_visible():
        dialog.first.click()


def run_all_until_findings_show(page, attempts: int = 6) -> None:
    """Run All through the menu. A run requested while the kernel is still connecting can be dropped by the
    front end, and the kernel dialog can open just after it was looked for and cover the menu: so ask again (the
    notebook is a dry run: running it twice is harmless)."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    for attempt in range(attempts):
        accept_kernel_dialog(page)
        try:
            page.click(".lm-MenuBar-itemLabel:text-is('Run')", timeout=10_000)
            page.click(".lm-Menu-itemLabel:text-is('Run All Cells')", timeout=10_000)
            page.wait_for_selector("table.tls-runbook-findings", timeout=20_000)
            return
        except PlaywrightTimeout:
            if attempt == attempts - 1:
                raise


def test_os_check_notebook_runs_in_jupyterlab_and_renders_findings_and_host_picker(jupyterlab):
    from playwright.sync_api import sync_playwright

    assert Path(CHROMIUM).exists(), "Debian's chromium is required (.ci/run installs it with apt)"
    url, token = jupyterlab
    external = []
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=[
            "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
            "--disable-component-update", "--disable-sync"])
        page = browser.new_page(viewport={"width": 1400, "height": 1000})

        def only_loopback(route):
            if route.request.url.startswith(("http://127.0.0.1", "ws://127.0.0.1", "data:", "blob:")):
                route.continue_()
            else:
                external.append(route.request.url)
                route.abort()

        page.route("**/*", only_loopback)
        page.goto(f"{url}/lab/tree/notebooks/02_os_check.ipynb?token={token}", wait_until="domcontentloaded")
        page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=90_000)
        try:
            run_all_until_findings_show(page)
            page.wait_for_selector(".tls-runbook-host-picker", timeout=60_000)
        finally:  # the screenshot is the evidence of what the browser showed, also when the test fails
            page.screenshot(path=str(SCREENSHOTS / "02_os_check.png"), full_page=True)
        findings = page.locator("table.tls-runbook-findings tbody tr").count()
        banner = page.locator(".tls-runbook-simulated").count()
        browser.close()
    assert findings > 0
    assert banner > 0, "the built-in simulated host must be labelled SIMULATED"
    assert external == [], f"JupyterLab or the page tried to reach outside loopback: {external[:5]}"
