"""Headless Chromium (Debian's chromium + chromium-driver) for checking pages.

Without Chromium a browser test is skipped, saying why; on CI (`CI=true`) it fails
instead, so a missing install can never pass as green."""
from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from typing import Iterator

import pytest


@contextlib.contextmanager
def chromium() -> Iterator[object]:
    """A Selenium driver on the system's headless Chromium, no network, fresh profile.

    Its performance log records every request a page makes (`driver.get_log`)."""
    binary = shutil.which("chromium") or shutil.which("chromium-browser")
    driver_path = shutil.which("chromedriver")
    if not (binary and driver_path):
        missing = ("headless Chromium is needed: apt-get install chromium chromium-driver "
                   "(.ci/run does)")
        if os.environ.get("CI") == "true":
            pytest.fail(missing)
        pytest.skip(missing)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="dm-chrome-")
    opts = webdriver.ChromeOptions()
    opts.binary_location = binary
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage",
                 f"--user-data-dir={profile}", "--window-size=1200,900"):
        opts.add_argument(flag)
    opts.set_capability("goog:loggingPrefs", {"performance": "ALL"})
    driver = webdriver.Chrome(service=Service(driver_path), options=opts)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)
