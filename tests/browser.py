"""Headless Chromium for the tests that look at a page as a person would (the Ray dashboard,
report.html). Needs ``apt-get install -y chromium chromium-driver`` and selenium."""

from __future__ import annotations

import importlib.util
import shutil
from contextlib import contextmanager
from pathlib import Path

__all__ = ["chromium", "has_browser"]


def has_browser() -> bool:
    return bool(
        shutil.which("chromium")
        and shutil.which("chromedriver")
        and importlib.util.find_spec("selenium")
    )


@contextmanager
def chromium(profile: Path, *, width: int = 1600, height: int = 1000):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium")
    # As root, on a machine with no network: no sandbox, nothing that phones home.
    for arg in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--hide-scrollbars",
        f"--user-data-dir={profile}",
        f"--window-size={width},{height}",
    ):
        options.add_argument(arg)
    driver = webdriver.Chrome(options=options, service=Service(shutil.which("chromedriver")))
    try:
        yield driver
    finally:
        driver.quit()
