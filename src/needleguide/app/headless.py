"""A headless Chromium page for the trainer's end-to-end tests and latency benchmark:
Debian's ``chromium`` driven by Selenium through Debian's ``chromedriver`` (both installed
by ``.ci/run``; Selenium comes with the ``test`` extra). Nothing is downloaded: the
browser and the driver are given by path, so Selenium Manager is never asked for one."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

CHROMIUM_NAMES = ("chromium", "chromium-browser")
DRIVER_NAMES = ("chromedriver",)


def find_browser() -> tuple[str | None, str | None]:
    """Paths of the system's Chromium and chromedriver (None where missing);
    ``NG_CHROMIUM`` / ``NG_CHROMEDRIVER`` override."""
    b = os.environ.get("NG_CHROMIUM") or next(
        (p for p in map(shutil.which, CHROMIUM_NAMES) if p), None)
    d = os.environ.get("NG_CHROMEDRIVER") or next(
        (p for p in map(shutil.which, DRIVER_NAMES) if p), None)
    return b, d


def chromium(width: int = 1366, height: int = 900, profile: Path | None = None):
    """A headless Chromium WebDriver (Selenium). Raises ``RuntimeError`` naming what is
    missing."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    browser, driver = find_browser()
    if browser is None or driver is None:
        raise RuntimeError("chromium and chromedriver are needed (Debian: apt-get install "
                           "chromium chromium-driver; .ci/run installs them)")
    opts = webdriver.ChromeOptions()
    opts.binary_location = browser
    for a in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
              "--disable-extensions", "--no-first-run", "--mute-audio",
              "--disable-background-timer-throttling", "--disable-renderer-backgrounding",
              "--disable-backgrounding-occluded-windows", f"--window-size={width},{height}"):
        opts.add_argument(a)
    if profile is not None:
        opts.add_argument(f"--user-data-dir={profile}")
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(service=Service(executable_path=driver), options=opts)


def console_errors(drv) -> list[str]:
    """The page's console messages at level SEVERE since the last call."""
    return [m["message"] for m in drv.get_log("browser") if m.get("level") == "SEVERE"]
