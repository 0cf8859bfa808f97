"""JupyterLab in a real headless browser: the OS-check notebook runs and shows its findings and host picker.

JupyterLab listens on loopback with a token; Debian's chromium (never a downloaded browser) is driven by
Playwright; every request that would leave 127.0.0.1 is blocked and recorded, and the test fails if there was one.
"""

import json
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


def write_lab_settings(settings: Path) -> None:
    """What an administrator's own JupyterLab would have settled: start the notebook's kernel without asking
    (the dialog otherwise races the first clicks), and no prompt about fetching news from outside loopback."""
    for plugin, values in {"notebook-extension/tracker": {"autoStartDefaultKernel": True},
                           "apputils-extension/notification": {"fetchNews": "false"}}.items():
        path = settings / "@jupyterlab" / f"{plugin}.jupyterlab-settings"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(values))


@pytest.fixture(scope="module")
def jupyterlab(tmp_path_factory):
    token = secrets.token_hex(16)
    port = free_port()
    home = tmp_path_factory.mktemp("jupyter-home")
    served = tmp_path_factory.mktemp("served")  # a copy: JupyterLab autosaves, the committed notebooks stay clean
    shutil.copytree(ROOT / "notebooks", served / "notebooks", ignore=shutil.ignore_patterns("evidence", ".*"))
    write_lab_settings(home / "settings")
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


def start_kernel_session(url: str, token: str, notebook: str) -> None:
    """Start the notebook's kernel through the server before the page opens, as reopening a running notebook
    does: JupyterLab then attaches to a kernel that is already there instead of choosing and starting one while its
    widget manager connects (the source of both races this test used to meet)."""
    request = urllib.request.Request(
        f"{url}/api/sessions", method="POST", headers={"Authorization": f"token {token}"},
        data=json.dumps({"path": notebook, "type": "notebook", "name": Path(notebook).name,
                         "kernel": {"name": "python3"}}).encode())
    session = json.load(urllib.request.urlopen(request, timeout=60))
    assert session["kernel"]["name"] == "python3", session


def accept_kernel_dialog(page) -> None:
    """If JupyterLab still asks which kernel to start, the default is right. A click that lands before the dialog
    is ready does nothing, so it counts only once the dialog is gone."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    dialog = page.locator(".jp-Dialog")
    for _ in range(5):
        if not (dialog.count() and dialog.first.is_visible()):
            return
        try:
            dialog.first.locator(".jp-mod-accept").click(timeout=5_000)
            dialog.first.wait_for(state="detached", timeout=5_000)
        except PlaywrightTimeout:
            page.keyboard.press("Enter")


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


def show_control_panel(page, attempts: int = 3) -> None:
    """Wait for the host picker in the last cell's output. JupyterLab 4 with ipywidgets 8 sometimes shows "Error
    displaying widget: model not found" when the kernel's connection changes while a notebook first runs (an
    upstream race, jupyter-widgets/ipywidgets#3823); what a user does then is run the cell again, and so does this.
    JupyterLab skips painting cells outside the view, so the picker is looked for in the page, then scrolled to."""
    panel_cell = page.locator(".jp-CodeCell").last
    for attempt in range(attempts):
        found = page.wait_for_selector(
            ".tls-runbook-host-picker, .jp-OutputArea-output:has-text('Error displaying widget')",
            state="attached", timeout=60_000)
        if "tls-runbook-host-picker" in (found.get_attribute("class") or ""):
            found.scroll_into_view_if_needed()
            found.wait_for_element_state("visible", timeout=10_000)
            return
        assert attempt < attempts - 1, f"the control panel did not render: {found.inner_text()}"
        panel_cell.locator(".jp-InputPrompt").click()
        page.keyboard.press("Control+Enter")
        panel_cell.locator(".jp-OutputArea-output:has-text('Error displaying widget')").wait_for(
            state="detached", timeout=30_000)


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
        start_kernel_session(url, token, "notebooks/02_os_check.ipynb")
        page.goto(f"{url}/lab/tree/notebooks/02_os_check.ipynb?token={token}", wait_until="domcontentloaded")
        page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=90_000)
        try:
            run_all_until_findings_show(page)
            show_control_panel(page)
        finally:  # the screenshot is the evidence of what the browser showed, also when the test fails
            page.screenshot(path=str(SCREENSHOTS / "02_os_check.png"), full_page=True)
        findings = page.locator("table.tls-runbook-findings tbody tr").count()
        banner = page.locator(".tls-runbook-simulated").count()
        browser.close()
    assert findings > 0
    assert banner > 0, "the built-in simulated host must be labelled SIMULATED"
    assert external == [], f"JupyterLab or the page tried to reach outside loopback: {external[:5]}"
