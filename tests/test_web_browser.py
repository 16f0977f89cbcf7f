"""The web page in a real headless browser: Debian's chromium and chromedriver, driven by
selenium (never a browser download)."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("flask")
webdriver = pytest.importorskip("selenium.webdriver")

from selenium.webdriver.chrome.options import Options  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

from edge.assemble import Device  # noqa: E402
from tests.test_web import PHOTO, start  # noqa: E402

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")

pytestmark = pytest.mark.skipif(CHROMIUM is None or CHROMEDRIVER is None,
                                reason="apt-get install chromium chromium-driver")


@pytest.fixture()
def browser(tmp_path: Path) -> Iterator[webdriver.Chrome]:
    options = Options()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--window-size=1280,1000",
                 f"--user-data-dir={tmp_path / 'profile'}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(60)
    yield driver
    driver.quit()


@pytest.fixture()
def device(tmp_path: Path) -> Iterator[Device]:
    d = start(tmp_path)
    yield d
    d.pipeline.stop()
    d.pipeline.join()
    d.close()


def _shot(driver: webdriver.Chrome, tmp_path: Path, name: str) -> Path:
    # EMOTION_EDGE_SCREENSHOTS=DIR keeps them for a person to look at.
    folder = Path(os.environ.get("EMOTION_EDGE_SCREENSHOTS", tmp_path))
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    assert driver.save_screenshot(str(path))
    return path


def test_live_page_shows_the_face_and_its_emotion(browser: webdriver.Chrome, device: Device,
                                                  tmp_path: Path) -> None:
    browser.get(device.web.url)
    wait = WebDriverWait(browser, 60)
    wait.until(lambda d: "Face #" in d.find_element(By.ID, "faces").text)
    faces = browser.find_element(By.ID, "faces").text
    assert "happy" in faces and "%" in faces
    assert browser.find_element(By.ID, "boxes").is_displayed()  # boxes without pixels
    assert "no camera pixels leave the device" in browser.find_element(By.ID, "privacy").text
    wait.until(lambda d: "appeared" in d.find_element(By.ID, "events").text)
    wait.until(lambda d: "fps" in d.find_element(By.ID, "state").text)
    assert "agrees with people (FER+)" in browser.find_element(By.ID, "model").text
    # Something was drawn: the canvas is not one flat colour.
    drawn = browser.execute_script(
        "const c = document.getElementById('boxes'), d = c.getContext('2d')"
        ".getImageData(0, 0, c.width, c.height).data;"
        "for (let i = 4; i < d.length; i += 4) if (d[i] !== d[0]) return true; return false;")
    assert drawn
    assert _shot(browser, tmp_path, "live.png").stat().st_size > 10_000
    browser.set_window_size(390, 844)  # a phone
    browser.refresh()
    wait.until(lambda d: "Face #" in d.find_element(By.ID, "faces").text)
    assert browser.execute_script(
        "return document.documentElement.scrollWidth <= window.innerWidth + 1")
    _shot(browser, tmp_path, "live-phone.png")


def test_photo_page_sends_again_when_the_device_is_busy(browser: webdriver.Chrome,
                                                        device: Device) -> None:
    browser.get(device.web.url + "predict")
    # The first answer is the device's "busy" (503, Retry-After 1), as when other photos
    # hold every upload slot; the page's second try reaches the device itself.
    browser.execute_script("""
        const real = window.fetch; window.tries = 0;
        window.fetch = (...args) => ++window.tries === 1
            ? Promise.resolve(new Response(JSON.stringify({error: "busy"}),
                {status: 503, headers: {"Retry-After": "1"}}))
            : real(...args);""")
    browser.find_element(By.ID, "photo").send_keys(str(PHOTO))
    browser.find_element(By.CSS_SELECTOR, "#upload button").click()
    WebDriverWait(browser, 60).until(lambda d: "Face 1" in d.find_element(By.ID, "faces").text)
    assert browser.execute_script("return window.tries") == 2
    assert "1 face(s)" in browser.find_element(By.ID, "message").text


def test_photo_page_labels_an_uploaded_photo(browser: webdriver.Chrome, device: Device,
                                             tmp_path: Path) -> None:
    browser.get(device.web.url + "predict")
    browser.find_element(By.ID, "photo").send_keys(str(PHOTO))
    browser.find_element(By.CSS_SELECTOR, "#upload button").click()
    wait = WebDriverWait(browser, 60)
    wait.until(lambda d: "Face 1" in d.find_element(By.ID, "faces").text)
    assert "happy" in browser.find_element(By.ID, "faces").text
    assert "1 face(s)" in browser.find_element(By.ID, "message").text
    assert browser.execute_script("return document.getElementById('picture').width") > 0
    _shot(browser, tmp_path, "photo.png")
