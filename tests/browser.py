"""Headless Chromium (Debian's chromium + chromium-driver) for checking pages.

Without Chromium (a contributor's laptop) a browser test is skipped, saying why; in CI
(`CI=true`, which `.ci/run` runs under) it fails instead, so that a missing browser
never passes for a green run.
"""
from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from typing import Iterator

import pytest


def missing() -> str | None:
    """Why headless Chromium cannot be driven here, or None."""
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (pip install -e '.[dev]')"
    if not (shutil.which("chromium") or shutil.which("chromium-browser")):
        return "no chromium on PATH (apt-get install chromium chromium-driver)"
    if not shutil.which("chromedriver"):
        return "no chromedriver on PATH (apt-get install chromium-driver)"
    return None


def require() -> None:
    """Skip the calling test when Chromium is missing; fail it in CI."""
    why = missing()
    if why is None:
        return
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"headless Chromium is needed in CI: {why}", pytrace=False)
    pytest.skip(f"headless Chromium is not available: {why}")


@contextlib.contextmanager
def chromium(width: int = 1200, height: int = 900) -> Iterator[object]:
    """A Selenium driver on the system's headless Chromium, no network, fresh profile.
    Skips (or, in CI, fails) the test when Chromium is missing."""
    require()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    binary = shutil.which("chromium") or shutil.which("chromium-browser")
    driver_path = shutil.which("chromedriver")
    profile = tempfile.mkdtemp(prefix="dm-chrome-")
    opts = webdriver.ChromeOptions()
    opts.binary_location = binary
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage",
                 f"--user-data-dir={profile}", f"--window-size={width},{height}"):
        opts.add_argument(flag)
    # The console (`browser`) and every request a page makes (`performance`).
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
    driver = webdriver.Chrome(service=Service(driver_path), options=opts)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)
