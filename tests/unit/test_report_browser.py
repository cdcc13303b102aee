"""report.html of the recorded default run, opened in a real browser (headless Debian chromium,
driven through chromedriver by selenium): no console errors, the verdict matrix on the first
screen, every image decoded, the filter working, a screenshot written; again at a phone's width.

chromium and chromium-driver are host packages `make test` installs (scripts/install-host-deps.sh).
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from PIL import Image
from selenium import webdriver
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By

DECODE_ALL = """
const done = arguments[arguments.length - 1];
Promise.all(Array.from(document.images).map(
  (img) => img.decode().then(() => [true, img.naturalWidth, img.naturalHeight], (e) => [false, String(e), 0])
)).then(done);
"""


@contextmanager
def browser(width: int, height: int) -> Iterator[webdriver.Chrome]:
    chromium, driver_path = shutil.which("chromium"), shutil.which("chromedriver")
    if not chromium or not driver_path:
        pytest.fail(
            "chromium and chromium-driver are missing: run scripts/install-host-deps.sh (make test does)"
        )
    options = Options()
    options.binary_location = chromium
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--hide-scrollbars",
    ):
        options.add_argument(arg)
    options.add_argument(f"--window-size={width},{height}")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(driver_path))
    driver.set_script_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()


def console_problems(driver: webdriver.Chrome) -> list[str]:
    return [e["message"] for e in driver.get_log("browser") if e["level"] in ("SEVERE", "WARNING")]


def test_the_console_check_catches_an_error(tmp_path):
    """The detector itself: a page that throws is caught (so a clean page means something)."""
    page = tmp_path / "broken.html"
    page.write_text("<!DOCTYPE html><title>x</title><script>undefinedFunction()</script>")
    with browser(800, 600) as driver:
        driver.get(page.as_uri())
        problems = console_problems(driver)
    assert any("undefinedFunction" in p for p in problems), problems


def _check_page(driver: webdriver.Chrome, page: Path) -> None:
    driver.get(page.as_uri())
    assert driver.title.startswith("pmemkit run 20261207-031959 — kernel 6.1.0-57-amd64")
    decoded = driver.execute_async_script(DECODE_ALL)
    assert len(decoded) == 5 and all(ok and w > 300 and h > 100 for ok, w, h in decoded), decoded
    matrix = driver.find_element(By.ID, "verdict-matrix")
    assert matrix.is_displayed() and len(matrix.find_elements(By.CSS_SELECTOR, "tbody tr")) == 14
    assert len(matrix.find_elements(By.CSS_SELECTOR, "td.c-refused")) == 46
    assert console_problems(driver) == []


def test_report_html_in_chromium(rendered_run, tmp_path):
    with browser(1400, 1000) as driver:
        _check_page(driver, rendered_run / "report.html")
        matrix = driver.find_element(By.ID, "verdict-matrix")
        assert matrix.rect["y"] < 200 and matrix.rect["y"] + matrix.rect["height"] < 1000  # first screen
        box = driver.find_element(By.ID, "obs-filter")
        box.send_keys("EINVAL")
        shown = driver.execute_script(
            "return document.querySelectorAll('#obs-table tbody tr:not([hidden])').length"
        )
        assert shown == 4 and driver.find_element(By.ID, "obs-shown").text == "4"
        box.clear()
        box.send_keys(" ")  # an input event with no words: every row again
        assert driver.find_element(By.ID, "obs-shown").text == "351"
        driver.execute_script("window.scrollTo(0, 0)")
        shot = tmp_path / "report-1400.png"
        assert driver.save_screenshot(str(shot))
        assert console_problems(driver) == []
    with Image.open(shot) as image:
        assert image.size[0] == 1400 and image.size[1] > 600, image.size


def test_report_html_at_a_phones_width(rendered_run, tmp_path):
    with browser(800, 900) as driver:  # headless windows are at least 500 wide: emulate the phone
        driver.execute_cdp_cmd(
            "Emulation.setDeviceMetricsOverride",
            {"width": 390, "height": 844, "deviceScaleFactor": 1, "mobile": True},
        )
        _check_page(driver, rendered_run / "report.html")
        assert driver.execute_script("return window.innerWidth") == 390
        inner = driver.execute_script("return window.innerWidth")
        # wide tables scroll inside their own box; the page itself never scrolls sideways
        assert driver.execute_script("return document.documentElement.scrollWidth") <= inner
        widths = driver.execute_script(
            "return Array.from(document.images).map(i => i.getBoundingClientRect().width)"
        )
        assert all(0 < w <= inner for w in widths), (widths, inner)
        shot = tmp_path / "report-390.png"
        assert driver.save_screenshot(str(shot))
    with Image.open(shot) as image:
        assert image.size[0] == 390, image.size
