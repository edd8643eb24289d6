"""Mybox in a real browser: headless Chromium driven by selenium against a running gateway.

One piece because its numbered steps share one gateway and one logged-in browser (module-scoped,
slow to start) and follow a user's path in order; split, each file would start its own browser.

What a user sees is asserted on the rendered page (texts, badges, attributes the page sets), after
clicking and typing like a user: the login form, the invoicing list refreshing itself while the
simulator answers, the filters, a feedback download, a certificate upload, an access grant, a
mandate accepted by both parties, the configuration check, the language switch and the masked
consultations.  Screenshots of the main pages are saved as test artefacts (PNG) in
``$UM_TEST_ARTIFACTS`` or ``tests/artifacts/screenshots/``.

Chromium and its driver come from the system (Debian's ``chromium`` and ``chromium-driver``, which
``.ci/run`` installs); nothing is downloaded (selenium-manager is not used: the driver's path is
given).  Without them the tests are skipped with a message saying what to install.
"""
from __future__ import annotations

import base64
import os
import shutil
import time
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Callable

import pytest
from selenium import webdriver
from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException, WebDriverException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import Select, WebDriverWait

from tests.invoicing_support import drop_file
from tests.support import wait_for
from tests.web_support import PASSWORDS, USERS, MyboxStack, start_mybox
from unified_messaging.identifiers import mask_ssin
from unified_messaging.invoicing.folders import Folders
from unified_messaging.invoicing.store import InvoicingStore
from unified_messaging.simulator.sending_writer import build_sending
from unified_messaging.simulator.devpki import GROUP_NUMBER, LAB_NIHII
from unified_messaging.domain.insurability import CareProvider, InsurabilityQuery
from unified_messaging.simulator.platform import demo_pki
from unified_messaging.simulator.population import TEST_PATIENTS
from unified_messaging.web.i18n import Translator

ROOT = Path(__file__).resolve().parent
ARTIFACTS = Path(os.environ.get("UM_TEST_ARTIFACTS") or ROOT / "artifacts" / "screenshots")
SCREENSHOTS = ("login", "dashboard", "invoicing-list", "invoicing-detail", "consultations", "batch-runs",
               "certificates", "certificate-detail", "mandates", "mandate", "administration", "folders", "users",
               "check-results", "account")
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
CHROME_ARGUMENTS = ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                    "--disable-background-networking", "--disable-extensions", "--no-first-run",
                    "--window-size=1366,900")
WAIT = 15.0  # seconds for a page or an element; the simulator's answers get their own, longer wait
ZONE_204 = "20241105000001"
GOOD_NAME = "MYBOX0001.txt"
BROKEN_NAME = "MYBOX0002.txt"
OLD_NAME = "OLDFILE2024.txt"  # recorded in October 2024, for the month filter
OLD_MONTH = "2024-10"

STARTED = time.time()
_saved: set[str] = set()


# ------------------------------------------------------------------------------ the browser and the stack

def _programs() -> tuple[str, str]:
    driver = shutil.which("chromedriver") or ("/usr/bin/chromedriver" if Path("/usr/bin/chromedriver").is_file()
                                              else None)
    browser = next((found for name in ("chromium", "chromium-browser", "google-chrome")
                    if (found := shutil.which(name))), None)
    if not driver or not browser:
        missing = ", ".join(name for name, path in (("chromium", browser), ("chromedriver", driver)) if not path)
        pytest.skip(f"the Mybox browser tests need Chromium and its driver ({missing} not found on PATH): "
                    "install the Debian packages 'chromium' and 'chromium-driver' (.ci/run does)")
    return driver, browser


def new_browser(downloads: Path | None = None) -> WebDriver:
    """A headless Chromium; with ``downloads``, files download there without asking."""
    driver_path, browser_path = _programs()
    options = webdriver.ChromeOptions()
    options.binary_location = browser_path
    for argument in CHROME_ARGUMENTS:
        options.add_argument(argument)
    if downloads is not None:
        options.add_experimental_option("prefs", {
            "download.default_directory": str(downloads), "download.prompt_for_download": False,
            "download.directory_upgrade": True})
    driver = webdriver.Chrome(service=Service(driver_path), options=options)
    driver.set_page_load_timeout(30)
    if downloads is not None:
        behaviour = {"behavior": "allow", "downloadPath": str(downloads)}
        try:
            driver.execute_cdp_cmd("Page.setDownloadBehavior", behaviour)
        except WebDriverException:  # newer Chromium: the Browser domain only
            driver.execute_cdp_cmd("Browser.setDownloadBehavior", behaviour)
    return driver


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    """One gateway for the file; the simulator's eFact answers are slow enough to see a file OK first."""
    _programs()  # skip before starting anything when there is no browser
    running = start_mybox(tmp_path_factory.mktemp("mybox-browser"), simulator={
        "genasync_acknowledgement_seconds": 2.0, "genasync_detailed_seconds": 3.0,
        "genasync_settlement_seconds": 4.0})
    yield running
    running.gateway.stop()


@pytest.fixture(scope="module")
def downloads(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("mybox-downloads")


@pytest.fixture(scope="module")
def browser(stack, downloads):
    """The administrator's browser, shared by the tests (it logs in when a page asks for it)."""
    driver = new_browser(downloads)
    yield driver
    driver.quit()


@pytest.fixture
def second_browser(stack):
    """Another browser (another session), closed after the test."""
    drivers: list[WebDriver] = []

    def make() -> WebDriver:
        drivers.append(new_browser())
        return drivers[-1]

    yield make
    for driver in drivers:
        driver.quit()


# ------------------------------------------------------------------------------ helpers

def wait(driver: WebDriver, timeout: float = WAIT) -> WebDriverWait:
    return WebDriverWait(driver, timeout, poll_frequency=0.1,
                         ignored_exceptions=(NoSuchElementException, StaleElementReferenceException))


def by_id(driver: WebDriver, element_id: str, timeout: float = WAIT):
    return wait(driver, timeout).until(EC.presence_of_element_located((By.ID, element_id)))


def click_and_load(driver: WebDriver, element) -> None:
    """Click something that sends a form or follows a link, and wait until the next page has loaded.

    The page is marked before the click; the next page has no mark.  (Selenium's ``staleness_of``
    is not used: while a page unloads, chromedriver sometimes answers with an "unknown error".)
    """
    driver.execute_script("window.myboxPageBeforeClick = true;")
    element.click()

    def loaded(d: WebDriver) -> bool:
        try:
            return d.execute_script("return window.myboxPageBeforeClick === undefined "
                                    "&& document.readyState === 'complete';")
        except WebDriverException:  # between two pages
            return False

    wait(driver).until(loaded)


def fill_login(driver: WebDriver, login: str, password: str) -> None:
    field = by_id(driver, "login")
    field.clear()
    field.send_keys(login)
    by_id(driver, "password").send_keys(password)
    click_and_load(driver, driver.find_element(By.ID, "login-submit"))


def log_in(driver: WebDriver, stack: MyboxStack, login: str) -> None:
    driver.get(stack.url("/login"))
    if not driver.find_elements(By.ID, "login"):  # already logged in: the login page sends to the dashboard
        return
    fill_login(driver, login, PASSWORDS[login])
    by_id(driver, "nav-account")


def goto(driver: WebDriver, stack: MyboxStack, path: str, login: str = "admin") -> None:
    """Open a Mybox page, logging in through the form (which brings back to the page) when asked to."""
    driver.get(stack.url(path))
    if driver.find_elements(By.ID, "login-submit"):
        fill_login(driver, login, PASSWORDS[login])
    by_id(driver, "nav-account")


def flash_text(driver: WebDriver, kind: str) -> str:
    return " ".join(e.text for e in driver.find_elements(By.CSS_SELECTOR, f"p.flash.{kind}"))


def screenshot(driver: WebDriver, name: str) -> Path:
    """The whole page as ``<ARTIFACTS>/<name>.png`` (beyond the window's height, up to 6000 px)."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    target = ARTIFACTS / f"{name}.png"
    try:
        size = driver.execute_cdp_cmd("Page.getLayoutMetrics", {})["cssContentSize"]
        clip = {"x": 0, "y": 0, "width": max(1, int(size["width"])), "height": min(6000, max(1, int(size["height"]))),
                "scale": 1}
        shot = driver.execute_cdp_cmd("Page.captureScreenshot",
                                      {"format": "png", "captureBeyondViewport": True, "clip": clip})
        target.write_bytes(base64.b64decode(shot["data"]))
    except (WebDriverException, KeyError):
        driver.save_screenshot(str(target))
    _saved.add(name)
    return target


def file_row(stack: MyboxStack, name: str) -> dict | None:
    rows = stack.gateway.mybox.services.invoicing.list_files(text=name, limit=5)
    return next((r for r in rows if r["name"] == name), None)


def good_file(stack: MyboxStack, *, settled: bool = True) -> dict:
    """The good eFact file (dropped the first time), once the simulator settled it when ``settled``."""
    if file_row(stack, GOOD_NAME) is None:
        drop_file(Folders(stack.invoicing_root).to_send, GOOD_NAME, build_sending(zone_204=ZONE_204))
    if not settled:
        return wait_for(lambda: file_row(stack, GOOD_NAME), 20, f"{GOOD_NAME} recorded")
    return wait_for(lambda: (r := file_row(stack, GOOD_NAME)) and r["shown_status"] == "DONE" and r,
                    30, f"{GOOD_NAME} settled (DONE)")


def listed(driver: WebDriver) -> dict[str, str]:
    """The invoicing list as shown: file name -> status badge text."""
    shown = {}
    for row in driver.find_elements(By.CSS_SELECTOR, "#files-table tbody tr[data-status]"):
        cells = row.find_elements(By.TAG_NAME, "td")
        shown[cells[1].find_element(By.TAG_NAME, "a").text] = cells[2].text
    return shown


def group_keystore(stack: MyboxStack) -> tuple[Path, str]:
    pki = demo_pki(stack.data)
    return pki.keystores["nursing_group"].path, pki.password


def group_certificate(stack: MyboxStack) -> int:
    """The nursing group's certificate in the secure space (added by the store when no test uploaded it)."""
    store = stack.gateway.securespace
    found = [c for c in store.certificates() if c.holder_name == "DEV NURSING GROUP"]
    if found:
        return found[0].id
    path, password = group_keystore(stack)
    return store.add_certificate(path.read_bytes(), password, responsible_login="admin",
                                 trusted_ca=stack.gateway.mybox.services.trusted_ca).id


# ------------------------------------------------------------------------------ 1. logging in

def test_logging_in_through_the_form_and_a_wrong_password(stack, second_browser):
    browser = second_browser()  # a browser of its own: nobody is logged in yet
    browser.get(stack.url("/invoicing"))  # anonymous: sent to the login page, which remembers the page
    by_id(browser, "login-submit")
    assert "/login" in browser.current_url and "next=" in browser.current_url
    assert browser.find_element(By.TAG_NAME, "h1").text == "Log in to Mybox"
    assert not browser.find_elements(By.ID, "nav-dashboard")  # no menu before logging in
    screenshot(browser, "login")

    fill_login(browser, "admin", "not-the-password")
    error = by_id(browser, "login-error")
    assert error.is_displayed()
    assert "The login or the password is wrong" in error.text
    assert browser.find_element(By.ID, "login").get_attribute("value") == "admin"  # kept, the password not
    assert browser.find_element(By.ID, "password").get_attribute("value") == ""
    assert not browser.find_elements(By.ID, "nav-account")

    fill_login(browser, "admin", PASSWORDS["admin"])
    account = by_id(browser, "nav-account")
    assert account.text == f"{USERS['admin'][0]} (admin)"
    assert browser.current_url.endswith("/mybox/invoicing")  # back to the page first asked for
    assert browser.find_element(By.TAG_NAME, "h1").text == "Invoicing files"

    click_and_load(browser, browser.find_element(By.ID, "nav-dashboard"))
    assert browser.find_element(By.TAG_NAME, "h1").text == "Dashboard"
    assert browser.find_element(By.ID, "chart-files").is_displayed()
    assert browser.find_element(By.ID, "chart-consultations").is_displayed()
    screenshot(browser, "dashboard")


# ------------------------------------------------------------------------------ 2. a file goes from OK to DONE

def test_an_invoicing_file_goes_from_ok_to_done_without_reloading(stack, browser):
    assert file_row(stack, GOOD_NAME) is None, "this test drops the good file itself"
    row = good_file(stack, settled=False)
    wait_for(lambda: file_row(stack, GOOD_NAME)["shown_status"] != "WAITING", 20, "the TAck (status OK)")

    goto(browser, stack, "/invoicing")
    file_id = file_row(stack, GOOD_NAME)["id"]
    line = browser.find_element(By.ID, f"file-{file_id}")
    first = line.get_attribute("data-status")
    assert first == "OK", f"the file shows {first} when the page opens (the TAck came, the answers not yet)"
    assert line.find_elements(By.TAG_NAME, "td")[2].text == "OK"
    assert ZONE_204 in line.text
    assert browser.find_element(By.ID, "files").get_attribute("data-refresh") == "5"
    browser.execute_script("window.myboxNotReloaded = true;")  # a reload would drop it

    def done(driver):
        shown = driver.find_element(By.ID, f"file-{file_id}")
        return shown.get_attribute("data-status") == "DONE" and shown

    line = wait(browser, 40).until(done)
    assert browser.execute_script("return window.myboxNotReloaded === true;"), "the page was reloaded"
    cells = line.find_elements(By.TAG_NAME, "td")
    assert cells[2].text == "DONE"
    assert cells[7].text.startswith("920900")  # the last feedback: the settlement
    assert "€" in cells[8].text  # the accepted amount
    assert browser.find_element(By.ID, "files").get_attribute("data-refresh") is None  # nothing pending: stops
    screenshot(browser, "invoicing-list")

    click_and_load(browser, line.find_element(By.LINK_TEXT, GOOD_NAME))
    assert browser.current_url.endswith(f"/invoicing/{file_id}")
    assert browser.find_element(By.ID, "file-status").text == "DONE"
    assert browser.find_element(By.ID, "file-reference").text == file_row(stack, GOOD_NAME)["reference"]
    sections = browser.find_elements(By.CSS_SELECTOR, "section.feedback")
    codes = [s.get_attribute("data-code") for s in sections]
    assert sorted(codes) == ["920098", "920900", "931000"], codes
    titles = {s.get_attribute("data-code"): s.find_element(By.TAG_NAME, "h3").text for s in sections}
    assert titles["931000"].startswith("931000 · acknowledgement")
    assert titles["920098"].startswith("920098 · detailed check (accepted)")
    assert titles["920900"].startswith("920900 · settlement")
    settled = file_row(stack, GOOD_NAME)
    euros = Translator("en").euros
    assert browser.find_element(By.ID, "amount-accepted").text == euros(settled["amount_accepted"])
    settlement = browser.find_element(By.CSS_SELECTOR, "section.feedback[data-code='920900']")
    amounts = [a.text for a in settlement.find_elements(By.CSS_SELECTOR, "table.settlements tbody td.num")]
    assert amounts == [euros(settled["amount_requested"]), euros(settled["amount_accepted"]),
                       euros(settled["amount_rejected"])], amounts
    assert settled["amount_accepted"] > 0
    for section in sections:  # each message is downloadable
        assert section.find_element(By.CSS_SELECTOR, "a.feedback-download").text.startswith("Download ")
    assert row["id"] == file_id
    screenshot(browser, "invoicing-detail")


# ------------------------------------------------------------------------------ 3. filters

def test_filtering_the_invoicing_list(stack, browser):
    good_file(stack)
    if file_row(stack, BROKEN_NAME) is None:
        drop_file(Folders(stack.invoicing_root).to_send, BROKEN_NAME, b"this is not an eFact sending\r\n")
    wait_for(lambda: (r := file_row(stack, BROKEN_NAME)) and r["shown_status"] == "ERROR", 20,
             f"{BROKEN_NAME} refused by the gateway")
    if file_row(stack, OLD_NAME) is None:  # a file of another month, as a year of traffic would have
        old = InvoicingStore(stack.gateway.journal, clock=lambda: datetime(2024, 10, 15, 9, 30, tzinfo=timezone.utc))
        old.record_file(name=OLD_NAME, size=1234, sha256="0" * 64, zone_204="20241015000007", destination="100",
                        is_test=True, state="refused", work_name=None, status="NOK",
                        reason="MyCareNet refused the file.")

    goto(browser, stack, "/invoicing")
    everything = listed(browser)
    assert {GOOD_NAME: "DONE", BROKEN_NAME: "ERROR", OLD_NAME: "NOK"}.items() <= everything.items(), everything

    def apply(status: str = "", month: str = "", text: str = "") -> dict[str, str]:
        goto(browser, stack, "/invoicing")
        Select(browser.find_element(By.ID, "filter-status")).select_by_value(status)
        Select(browser.find_element(By.ID, "filter-month")).select_by_value(month)
        box = browser.find_element(By.ID, "filter-text")
        box.clear()
        box.send_keys(text)
        click_and_load(browser, browser.find_element(By.ID, "filter-submit"))
        shown = listed(browser)
        count = browser.find_element(By.ID, "files-count").text
        assert count == f"{len(shown)} file(s)", (count, shown)
        return shown

    assert apply(status="DONE") == {GOOD_NAME: "DONE"}
    assert "status=DONE" in browser.current_url
    assert Select(browser.find_element(By.ID, "filter-status")).first_selected_option.text == "DONE"
    assert apply(status="ERROR") == {BROKEN_NAME: "ERROR"}
    assert apply(status="NOK") == {OLD_NAME: "NOK"}
    assert apply(month=OLD_MONTH) == {OLD_NAME: "NOK"}
    this_month = datetime.now(timezone.utc).strftime("%Y-%m")
    assert apply(month=this_month) == {GOOD_NAME: "DONE", BROKEN_NAME: "ERROR"}
    assert apply(text=ZONE_204) == {GOOD_NAME: "DONE"}  # zone 204
    assert apply(text="mybox000") == {GOOD_NAME: "DONE", BROKEN_NAME: "ERROR"}  # part of the name, any case
    assert apply(status="DONE", month=OLD_MONTH) == {}
    assert "No file matches." in browser.find_element(By.ID, "files-table").text
    click_and_load(browser, browser.find_element(By.LINK_TEXT, "Clear"))
    assert {GOOD_NAME, BROKEN_NAME, OLD_NAME} <= set(listed(browser))


# ------------------------------------------------------------------------------ 4. download

def test_downloading_a_feedback_message(stack, browser, downloads):
    file_id = good_file(stack)["id"]
    received = Folders(stack.invoicing_root).received
    goto(browser, stack, f"/invoicing/{file_id}")
    links = browser.find_elements(By.CSS_SELECTOR, "a.feedback-download")
    assert len(links) == 3
    for old in downloads.iterdir():
        old.unlink()
    for link in links:
        name = link.text.removeprefix("Download ").strip()
        assert (received / name).is_file(), name
        link.click()
        arrived = downloads / name
        wait_for(lambda: arrived.is_file() and not list(downloads.glob("*.crdownload"))
                 and arrived.stat().st_size == (received / name).stat().st_size, 20, f"{name} downloaded")
        assert arrived.read_bytes() == (received / name).read_bytes()  # the same bytes as in received/
    assert sorted(p.name for p in downloads.iterdir()) == sorted(
        p.name for p in received.iterdir() if p.name.startswith(GOOD_NAME.removesuffix(".txt") + "_"))
    assert browser.current_url.endswith(f"/invoicing/{file_id}")  # a download, not a page


# ------------------------------------------------------------------------------ 5. certificate upload

def test_uploading_a_certificate(stack, browser):
    assert not [c for c in stack.gateway.securespace.certificates() if c.holder_name == "DEV NURSING GROUP"]
    path, password = group_keystore(stack)
    expiry = demo_pki(stack.data).load("nursing_group").authentication.certificate.not_valid_after_utc

    goto(browser, stack, "/certificates")
    assert "No certificate yet." in browser.find_element(By.ID, "certificates-table").text
    by_id(browser, "p12-file").send_keys(str(path))
    browser.find_element(By.ID, "p12-password").send_keys(password)
    responsible = Select(browser.find_element(By.ID, "p12-responsible")).first_selected_option
    assert responsible.get_attribute("value") == "admin"  # the uploader, by default
    click_and_load(browser, browser.find_element(By.ID, "p12-submit"))

    assert "/certificates/" in browser.current_url
    assert flash_text(browser, "ok").startswith("Certificate #")
    assert f"DEV NURSING GROUP, valid until {expiry:%Y-%m-%d}" in flash_text(browser, "ok")
    assert browser.find_element(By.ID, "certificate-holder").text == "DEV NURSING GROUP"
    assert browser.find_element(By.ID, "certificate-quality").text == "groupofnurses"
    assert browser.find_element(By.ID, "certificate-expiry").text == f"{expiry:%Y-%m-%d %H:%M}"
    facts = browser.find_element(By.ID, "certificate-facts").text
    assert GROUP_NUMBER in facts and "admin" in facts  # its number, and the uploader as responsible person
    assert not browser.find_elements(By.ID, "certificate-problem")
    screenshot(browser, "certificate-detail")

    certificate_id = int(browser.current_url.rstrip("/").rsplit("/", 1)[1])
    click_and_load(browser, browser.find_element(By.ID, "nav-certificates"))
    row = browser.find_element(By.ID, f"certificate-{certificate_id}")
    assert "DEV NURSING GROUP" in row.text and "groupofnurses" in row.text and f"{expiry:%Y-%m-%d}" in row.text
    screenshot(browser, "certificates")


# ------------------------------------------------------------------------------ 6. access list

def test_granting_access_to_a_certificate(stack, browser, second_browser):
    certificate_id = group_certificate(stack)
    goto(browser, stack, f"/certificates/{certificate_id}")
    assert "Responsible person\nadmin" in browser.find_element(By.ID, "certificate-facts").text
    assert not browser.find_elements(By.ID, "access-office")
    Select(browser.find_element(By.ID, "grant-login")).select_by_value("office")
    click_and_load(browser, browser.find_element(By.ID, "grant-submit"))
    assert flash_text(browser, "ok") == f"office may now use certificate #{certificate_id}."
    cells = by_id(browser, "access-office").find_elements(By.TAG_NAME, "td")
    assert [cells[0].text, cells[1].text] == ["office", "admin"]
    offered = [o.get_attribute("value") for o in Select(browser.find_element(By.ID, "grant-login")).options]
    assert "office" not in offered  # no longer offered

    office = second_browser()
    log_in(office, stack, "office")
    assert not office.find_elements(By.ID, "nav-admin")  # no administration in the office's menu
    click_and_load(office, office.find_element(By.ID, "nav-certificates"))
    row = office.find_element(By.ID, f"certificate-{certificate_id}")  # sees the certificates...
    assert "DEV NURSING GROUP" in row.text
    assert not office.find_elements(By.ID, "certificate-upload")  # ...but may not add one
    assert not office.find_elements(By.ID, "p12-file")
    click_and_load(office, row.find_element(By.TAG_NAME, "a"))
    assert not office.find_elements(By.ID, "establishment-form")
    Select(office.find_element(By.ID, "grant-login")).select_by_value("nurse")  # not responsible for it
    click_and_load(office, office.find_element(By.ID, "grant-submit"))
    assert flash_text(office, "error").startswith("SS-NOT-RESPONSIBLE: ")
    assert not office.find_elements(By.ID, "access-nurse")
    office.get(stack.url("/admin"))
    assert "administrator" in by_id(office, "refused").text


# ------------------------------------------------------------------------------ 7. mandates

def test_proposing_and_activating_a_mandate(stack, browser):
    goto(browser, stack, "/mandates")
    by_id(browser, "mandate-mandant").send_keys(f"NIHII={LAB_NIHII}")
    browser.find_element(By.ID, "mandate-mandataire").send_keys(f"NIHII={GROUP_NUMBER}")
    Select(browser.find_element(By.ID, "mandate-service")).select_by_value("INVOICING")
    today = datetime.now(timezone.utc).date().isoformat()  # the gateway's day (UTC)
    assert browser.find_element(By.ID, "mandate-from").get_attribute("value") == today
    click_and_load(browser, browser.find_element(By.ID, "mandate-submit"))

    assert "/mandates/" in browser.current_url, flash_text(browser, "error")
    mandate_id = int(browser.current_url.rstrip("/").rsplit("/", 1)[1])
    assert "proposed" in flash_text(browser, "ok")
    state = browser.find_element(By.ID, "mandate-state")
    assert (state.get_attribute("data-state"), state.text) == ("proposed", "proposed")
    mandate_facts = browser.find_element(By.CSS_SELECTOR, "dl.facts").text
    assert f"NIHII={LAB_NIHII}" in mandate_facts and f"NIHII={GROUP_NUMBER}" in mandate_facts
    assert "INVOICING" in mandate_facts
    click_and_load(browser, browser.find_element(By.ID, "action-accept-mandant"))
    assert browser.find_element(By.ID, "mandate-state").get_attribute("data-state") == "accepted-by-mandant"
    assert flash_text(browser, "ok") == f"Mandate #{mandate_id} is now accepted-by-mandant."
    click_and_load(browser, browser.find_element(By.ID, "action-accept-mandataire"))
    state = browser.find_element(By.ID, "mandate-state")
    assert (state.get_attribute("data-state"), state.text) == ("active", "active")
    assert flash_text(browser, "ok") == f"Mandate #{mandate_id} is now active."
    history = [[cell.text for cell in row.find_elements(By.TAG_NAME, "td")[2:6]]
               for row in browser.find_elements(By.CSS_SELECTOR, "#mandate-history tbody tr")]
    assert history == [["propose", "", "proposed", "admin"],
                       ["accept by mandant", "proposed", "accepted-by-mandant", "admin"],
                       ["accept by mandataire", "accepted-by-mandant", "active", "admin"]], history
    assert not browser.find_elements(By.ID, "action-accept-mandant")  # done: no longer offered
    assert browser.find_elements(By.ID, "action-suspend")
    screenshot(browser, "mandate")

    click_and_load(browser, browser.find_element(By.ID, "nav-mandates"))
    row = browser.find_element(By.ID, f"mandate-{mandate_id}")
    assert "INVOICING" in row.text and row.text.rstrip().endswith("active")
    screenshot(browser, "mandates")


# ------------------------------------------------------------------------------ 8. configuration check

def test_the_configuration_check(stack, browser):
    certificate_id = group_certificate(stack)
    licence = stack.gateway.config.licence
    goto(browser, stack, "/admin")
    if not stack.gateway.securespace.licence_username():
        assert licence.username in browser.find_element(By.ID, "licence-status").text
        username = browser.find_element(By.ID, "licence-username")
        username.clear()
        username.send_keys(licence.username)
        browser.find_element(By.ID, "licence-password").send_keys(licence.password)
        click_and_load(browser, browser.find_element(By.ID, "licence-submit"))
        assert flash_text(browser, "ok").startswith(f"Licence {licence.username} recorded")
    assert f"Recorded in the secure space: {licence.username}" in by_id(browser, "licence-status").text
    assert licence.password not in browser.page_source
    screenshot(browser, "administration")

    click_and_load(browser, browser.find_element(By.ID, "admin-check"))
    click_and_load(browser, browser.find_element(By.ID, "check-submit"))
    result = by_id(browser, f"check-{certificate_id}", timeout=60)
    assert "DEV NURSING GROUP" in result.find_element(By.TAG_NAME, "h2").text
    rows = {r.get_attribute("data-service"): r for r in result.find_elements(By.CSS_SELECTOR, "tr.service")}
    assert list(rows) == ["INSURABILITY", "INVOICING", "MED_ADMIN"]
    shown = {service: row.find_elements(By.TAG_NAME, "td")[1].text for service, row in rows.items()}
    assert "STS token: issued" in result.text  # the live part ran: the simulated STS gave a token
    assert shown == {"INSURABILITY": "Active", "INVOICING": "Active", "MED_ADMIN": "Not offered by this gateway"}, \
        result.text
    for service, row in rows.items():
        assert row.get_attribute("data-status") == shown[service]
    if any(m.state.value == "active" and m.mandant.value == LAB_NIHII for m in stack.gateway.securespace.mandates()):
        acts_for = rows["INVOICING"].find_elements(By.TAG_NAME, "td")[2].text
        assert f"NIHII={LAB_NIHII}" in acts_for, acts_for  # the lab's mandate of test 7
    why = rows["MED_ADMIN"].find_elements(By.TAG_NAME, "td")[3].text
    assert why == "This gateway has no client for this service: use the software that offers it.", why
    screenshot(browser, "check-results")


# ------------------------------------------------------------------------------ 9. language

def test_switching_the_language(stack, browser):
    from unified_messaging.web.i18n import CATALOGUES

    def choose(code: str) -> None:
        goto(browser, stack, "/account")
        Select(by_id(browser, "language")).select_by_value(code)
        click_and_load(browser, browser.find_element(By.ID, "language-submit"))
        wait(browser).until(lambda d: d.find_element(By.TAG_NAME, "html").get_attribute("lang") == code)

    try:
        for code in ("nl", "fr"):
            choose(code)
            catalogue = CATALOGUES.get(code, {})
            assert browser.find_element(By.ID, "nav-dashboard").text == catalogue.get("Dashboard", "Dashboard")
            assert browser.find_element(By.ID, "nav-invoicing").text == catalogue.get("Invoicing", "Invoicing")
            assert flash_text(browser, "ok") == catalogue.get("Language changed.", "Language changed.")
            assert Select(browser.find_element(By.ID, "language")).first_selected_option.get_attribute("value") == code
            click_and_load(browser, browser.find_element(By.ID, "nav-dashboard"))  # the choice stays
            assert browser.find_elements(By.ID, "chart-files")
            assert browser.find_element(By.TAG_NAME, "html").get_attribute("lang") == code
    finally:
        choose("en")
    assert browser.find_element(By.ID, "nav-dashboard").text == "Dashboard"
    assert flash_text(browser, "ok") == "Language changed."
    assert browser.find_element(By.TAG_NAME, "h1").text == "Your settings"
    screenshot(browser, "account")


# ------------------------------------------------------------------------------ consultations

def test_consultations_show_patients_masked(stack, browser):
    service = stack.gateway.insurability
    lab = CareProvider(LAB_NIHII, "labo")
    today = date.today()
    insured = next(p for p in TEST_PATIENTS if p.scenario == "insured")
    unknown = next(p for p in TEST_PATIENTS if p.scenario == "unknown")
    answers = [service.consult(InsurabilityQuery(lab, today, today, ssin=p.ssin, reference="MYBOX-UI"),
                               interface="soap") for p in (insured, unknown)]
    assert answers[0].fault is None and answers[0].audit_reference

    goto(browser, stack, "/insurability")
    table = browser.find_element(By.ID, "consultations-table")
    text = table.text
    for patient in (insured, unknown):
        assert mask_ssin(patient.ssin) in text
        assert patient.ssin not in browser.page_source
    assert answers[0].audit_reference in text
    assert "OK" in text and LAB_NIHII in text
    assert "Patients are shown masked." in browser.find_element(By.TAG_NAME, "main").text
    screenshot(browser, "consultations")

    Select(browser.find_element(By.ID, "filter-outcome")).select_by_value("OK")
    click_and_load(browser, browser.find_element(By.ID, "filter-submit"))
    rows = browser.find_elements(By.CSS_SELECTOR, "#consultations-table tbody tr")
    assert rows and all("OK" in r.text for r in rows)
    assert mask_ssin(insured.ssin) in browser.find_element(By.ID, "consultations-table").text
    assert mask_ssin(unknown.ssin) not in browser.find_element(By.ID, "consultations-table").text
    assert insured.ssin not in browser.page_source


# ------------------------------------------------------------------------------ 10. screenshots

def test_screenshots_of_the_main_pages(stack, browser):
    """The pages no test above saved (all of them when the file runs alone), then every file is checked."""
    def check_results() -> None:
        group_certificate(stack)
        goto(browser, stack, "/admin/check")
        click_and_load(browser, browser.find_element(By.ID, "check-submit"))
        wait(browser, 60).until(EC.presence_of_element_located((By.CSS_SELECTOR, "section.check-result")))

    def first_link_in(path: str, table: str) -> Callable[[], None]:
        def visit() -> None:
            if table == "files-table":
                good_file(stack)
            else:
                group_certificate(stack)
            goto(browser, stack, path)
            click_and_load(browser, browser.find_element(By.CSS_SELECTOR, f"#{table} tbody a"))
        return visit

    def first_mandate() -> None:
        store = stack.gateway.securespace
        if not store.mandates():
            group_certificate(stack)
            goto(browser, stack, "/mandates")
            browser.find_element(By.ID, "mandate-mandant").send_keys(f"NIHII={LAB_NIHII}")
            browser.find_element(By.ID, "mandate-mandataire").send_keys(f"NIHII={GROUP_NUMBER}")
            click_and_load(browser, browser.find_element(By.ID, "mandate-submit"))
        goto(browser, stack, f"/mandates/{store.mandates()[0].id}")

    def login_page() -> None:
        anonymous = new_browser()
        try:
            anonymous.get(stack.url("/login"))
            by_id(anonymous, "login-submit")
            screenshot(anonymous, "login")
        finally:
            anonymous.quit()

    pages: dict[str, Callable[[], None] | str] = {
        "login": login_page, "dashboard": "/", "invoicing-list": "/invoicing",
        "invoicing-detail": first_link_in("/invoicing", "files-table"), "consultations": "/insurability",
        "batch-runs": "/batch", "certificates": "/certificates",
        "certificate-detail": first_link_in("/certificates", "certificates-table"), "mandates": "/mandates",
        "mandate": first_mandate, "administration": "/admin", "folders": "/admin/folders", "users": "/admin/users",
        "check-results": check_results, "account": "/account",
    }
    assert set(pages) == set(SCREENSHOTS)
    _saved.discard("dashboard")  # again, now that the tests above made some traffic to chart
    for name in SCREENSHOTS:
        if name in _saved:
            continue
        visit = pages[name]
        if isinstance(visit, str):
            goto(browser, stack, visit)
        else:
            visit()
        if name != "login":
            screenshot(browser, name)

    goto(browser, stack, "/")
    figures = browser.find_element(By.CSS_SELECTOR, "#chart-files table.figures").get_attribute("textContent")
    if file_row(stack, GOOD_NAME) is not None:  # the charts count the traffic of the tests above
        assert datetime.now(timezone.utc).strftime("%Y-%m") in figures, figures
    goto(browser, stack, "/batch")
    assert "Batch runs" in browser.find_element(By.TAG_NAME, "h1").text
    goto(browser, stack, "/admin/folders")
    assert BROKEN_NAME in browser.find_element(By.ID, "error-files").text or file_row(stack, BROKEN_NAME) is None
    goto(browser, stack, "/admin/users")
    assert {f"user-{login}" for login in USERS} <= {e.get_attribute("id") for e in
                                                    browser.find_elements(By.CSS_SELECTOR, "#users-table tr[id]")}
    for login, (_name, ssin, _roles) in USERS.items():
        assert ssin not in browser.page_source

    for name in SCREENSHOTS:
        path = ARTIFACTS / f"{name}.png"
        assert path.is_file(), path
        data = path.read_bytes()
        assert data.startswith(PNG_MAGIC) and len(data) > 2000, (path, len(data))
        assert path.stat().st_mtime >= STARTED - 1, f"{path} was not written by this run"
