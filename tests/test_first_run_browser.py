"""The first run in a real browser: headless Chromium opens the address ``serve`` would print, the
person types the first administrator's details, lands on the dashboard logged in; the address
then leads to the login page.  A screenshot of the form is saved with the other Mybox ones.

Chromium and its driver come from Debian's ``chromium`` and ``chromium-driver`` (``.ci/run``
installs them); without them the test is skipped with a message saying what to install.
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import WebDriverWait

from tests.conftest import make_config
from unified_messaging.gateway import Gateway
from unified_messaging.securespace.crypto import PasswordHasher

ARTIFACTS = Path(os.environ.get("UM_TEST_ARTIFACTS") or Path(__file__).resolve().parent / "artifacts" / "screenshots")


@pytest.fixture()
def chromium():
    chromedriver, binary = shutil.which("chromedriver"), shutil.which("chromium") or shutil.which("chromium-browser")
    if not chromedriver or not binary:
        pytest.skip("the first-run browser test needs Chromium and its driver: install the Debian packages "
                    "'chromium' and 'chromium-driver' (.ci/run does)")
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--no-first-run", "--window-size=1200,900"):
        options.add_argument(argument)
    driver = webdriver.Chrome(service=Service(chromedriver), options=options)
    driver.set_page_load_timeout(30)
    yield driver
    driver.quit()


def test_the_first_administrator_is_made_in_the_browser(tmp_path, chromium):
    gateway = Gateway(make_config(tmp_path, folders={"insurability": False}, invoicing={"enabled": False})).start()
    try:
        gateway.securespace.hasher = PasswordHasher(cost=2 ** 12)
        chromium.get(gateway.mybox_url + "/login")
        assert "first-run address" in chromium.find_element(By.CSS_SELECTOR, ".login .flash.info").text
        address = gateway.mybox.first_run.address(gateway.mybox_url)
        chromium.get(address)
        assert chromium.find_element(By.TAG_NAME, "h1").text == "Create the first administrator"
        for field, text in (("first-login", "fiona"), ("first-name", "Fiona First"), ("first-ssin", "85073003328"),
                            ("first-password", "First-admin-pw-1"), ("first-again", "First-admin-pw-1")):
            chromium.find_element(By.ID, field).send_keys(text)
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        assert chromium.get_screenshot_as_png().startswith(b"\x89PNG")
        chromium.save_screenshot(str(ARTIFACTS / "first-run.png"))
        chromium.find_element(By.ID, "first-run-submit").click()
        WebDriverWait(chromium, 15).until(EC.presence_of_element_located((By.ID, "nav-admin")))
        assert "Administrator fiona created" in chromium.page_source
        assert chromium.find_element(By.ID, "nav-account").text == "Fiona First (fiona)"
        chromium.get(address)  # the page is gone: back to Mybox (logged in: the dashboard)
        assert "/first-run" not in chromium.current_url
        assert chromium.find_elements(By.ID, "first-run") == []
        assert [u.login for u in gateway.securespace.users()] == ["fiona"]
    finally:
        gateway.stop()
