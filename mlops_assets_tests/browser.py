"""The Dagster UI in a real browser: a webserver on an instance, Debian's Chromium driven by Playwright, and the
few moves a user makes (open a page past the first-visit dialog). Screenshots go to var/test-artifacts/ui/."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

from mlops_assets.settings import PROJECT_ROOT
from mlops_assets_tests.servers import code_locations_loaded, free_port, stop_process_group, wait_for

ARTIFACTS = PROJECT_ROOT / "var" / "test-artifacts" / "ui"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


@contextlib.contextmanager
def webserver(dagster_home: str | Path | None = None) -> Iterator[str]:
    """`dagster-webserver` on the project's workspace and the given instance (default: this process'),
    on a free loopback port; yields its URL once every code location loaded."""
    env = dict(os.environ)
    if dagster_home is not None:
        env["DAGSTER_HOME"] = str(dagster_home)
    port = free_port()
    binary = Path(sys.executable).parent / "dagster-webserver"
    args = [str(binary), "-w", "workspace.yaml", "-h", "127.0.0.1", "-p", str(port)]
    process = subprocess.Popen(args, cwd=PROJECT_ROOT, env=env, start_new_session=True)
    try:
        wait_for(f"http://127.0.0.1:{port}/server_info", code_locations_loaded(port), 300, process)
        yield f"http://127.0.0.1:{port}"
    finally:
        stop_process_group(process)


@contextlib.contextmanager
def chromium_page() -> Iterator[object]:
    """A headless Chromium page (Playwright's own browser download cannot work here: Debian's is used)."""
    from playwright.sync_api import sync_playwright

    assert Path(CHROMIUM).exists(), "Chromium missing: `make browser` installs Debian's chromium"
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 1600, "height": 1000})
            page.set_default_timeout(60_000)
            yield page
        finally:
            browser.close()


def open_page(page, url: str) -> None:
    """Go to url as a user does, past the UI's first-visit community dialog when it shows."""
    page.goto(url)
    skip = page.get_by_role("button", name="Skip")
    try:
        skip.wait_for(timeout=5_000)
        skip.click()
    except Exception:
        pass


def screenshot(page, name: str) -> Path:
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=path)
    return path
