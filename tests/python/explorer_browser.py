"""Drives the corpus explorer in a real headless Chromium (Debian's chromium and chromedriver,
through Selenium's WebDriver), as tests/e2e/explorer.rs starts it: `tokenlake serve --ui` over
the curated sample lake with a reader and an admin token. Writes a screenshot of each page into
EXPLORER_SCREENSHOTS. Exits non-zero, saying which step failed, when the explorer misbehaves.

Environment: EXPLORER_URL, READER_TOKEN, ADMIN_TOKEN, EXPLORER_SCREENSHOTS, and what the test
computed with `tokenlake query`: FILTER and FILTER_COUNT, FLAGGED_ID and FLAGGED_CHECK, COPY_ID
and KEEPER_ID (a planted exact copy and its keeper), XSS_ID (a document of script and markup).
"""

import csv
import json
import os
import sys
import tempfile
import time
import urllib.error
import urllib.request

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import Select, WebDriverWait

E = os.environ
URL = E["EXPLORER_URL"].rstrip("/")
SHOTS = E["EXPLORER_SCREENSHOTS"]
os.makedirs(SHOTS, exist_ok=True)
downloads = tempfile.mkdtemp(prefix="explorer-downloads-")


def driver():
    options = webdriver.ChromeOptions()
    options.binary_location = E.get("CHROMIUM", "/usr/bin/chromium")
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1400,1000",
                "--disable-gpu", "--no-first-run"):
        options.add_argument(arg)
    options.add_experimental_option("prefs", {
        "download.default_directory": downloads,
        "download.prompt_for_download": False,
    })
    return webdriver.Chrome(service=Service(E.get("CHROMEDRIVER", "/usr/bin/chromedriver")), options=options)


def step(name):
    print(f"step: {name}", flush=True)


d = driver()
wait = WebDriverWait(d, 30)


def find(css):
    return wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, css)))


def text_of(css, contains):
    wait.until(ec.text_to_be_present_in_element((By.CSS_SELECTOR, css), contains))
    return d.find_element(By.CSS_SELECTOR, css).text


def shot(name):
    time.sleep(0.3)
    d.save_screenshot(os.path.join(SHOTS, f"{name}.png"))


def go(hash_path):
    d.execute_script("location.hash = arguments[0]", hash_path)


def sign_in(token):
    field = find("#token")
    field.clear()
    field.send_keys(token)
    find("#signin").click()
    find("#nav-versions")


try:
    step("without a token the pages refuse")
    d.get(URL + "/")
    find("#login")
    for path in ("/api/lakes", "/api/lakes/sample/documents", "/api/lakes/sample/versions"):
        try:
            urllib.request.urlopen(URL + path)
            raise AssertionError(f"{path} answered without a token")
        except urllib.error.HTTPError as e:
            assert e.code == 401, (path, e.code)
    shot("sign-in")

    step("a wrong token is refused")
    find("#token").send_keys("not-a-token")
    find("#signin").click()
    text_of("#refused", "not known")

    step("sign in as a reader")
    sign_in(E["READER_TOKEN"])
    assert "(reader)" in find("#who").text
    # The session is an HttpOnly cookie: the page's script cannot read it.
    assert "tokenlake_session" not in d.execute_script("return document.cookie")
    cookie = d.get_cookie("tokenlake_session")
    assert cookie and cookie["httpOnly"] and cookie.get("sameSite") == "Strict", cookie

    step("versions: a reader is offered no admin action")
    go("#/versions")
    text_of("main", "Versions of sample")
    assert not d.find_elements(By.CSS_SELECTOR, "#tag-form")
    # The diff of the first version and the latest: the two planted documents were added.
    find("#diff-from").send_keys("1")
    find("#diff-from").submit()
    summary = text_of("#diff-summary", "added")
    assert summary.startswith("version 1 → ") and ": 2 documents" in summary, summary
    shot("versions")

    step("describe")
    go("#/describe")
    text_of("#totals", "documents")
    shot("describe")

    step("filter documents by a label")
    go("#/documents")
    f = find("#filter")
    f.clear()
    f.send_keys(E["FILTER"])
    find("#apply").click()
    wait.until(lambda _: "filter=" in d.current_url)
    got = text_of("#matched", E["FILTER_COUNT"])
    assert got == E["FILTER_COUNT"], (got, E["FILTER_COUNT"])
    shot("documents")

    step("open a flagged document and see the check that fired")
    go("#/documents")
    f = find("#filter")
    f.clear()
    f.send_keys(f"doc_id = {E['FLAGGED_ID']}")
    find("#apply").click()
    text_of("#matched", "1")
    find(".doc-link").click()
    checks = text_of("#checks", E["FLAGGED_CHECK"])
    line = next(li.text for li in d.find_elements(By.CSS_SELECTOR, "#checks li") if li.text.startswith(E["FLAGGED_CHECK"] + " "))
    assert "the threshold" in line and (" is below " in line or " is above " in line), line
    assert "the curation that made version" in find("#thresholds-from").text
    shot("document")

    step("open the duplicate cluster of a planted copy and see its keeper")
    go(f"#/doc/{E['COPY_ID']}")
    find("#cluster-link").click()
    text_of("#cluster-size", "documents")
    keeper = find(".keeper").find_element(By.XPATH, "..").find_element(By.TAG_NAME, "a").text
    assert keeper == E["KEEPER_ID"], (keeper, E["KEEPER_ID"])
    kinds = [k.text for k in d.find_elements(By.CSS_SELECTOR, ".edge-kind")]
    assert any("exact" in k or "url" in k or "simhash" in k or "minhash" in k for k in kinds), kinds
    shot("cluster")

    step("run SQL and download CSV")
    go("#/sql")
    box = find("#sql")
    box.clear()
    box.send_keys("SELECT source, count(*) AS docs FROM documents GROUP BY source ORDER BY source")
    find("#run-sql").click()
    status = text_of("#sql-status", "rows in")
    assert status.startswith("5 rows") or status.split()[0].isdigit(), status
    shot("sql")
    find("#csv-link").click()
    path = os.path.join(downloads, "query.csv")
    for _ in range(100):
        if os.path.exists(path):
            break
        time.sleep(0.1)
    with open(path, newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    assert {r["source"] for r in rows} >= {"en", "zh", "code"}, rows
    assert sum(int(r["docs"]) for r in rows) > 300, rows

    step("preview the shipped Ziya2 recipe")
    go("#/recipe")
    Select(find("#recipe-pick")).select_by_value("ziya2.toml")
    assert "stage1-pretrain" in find("#recipe").get_attribute("value")
    find("#preview").click()
    text_of("#plan-id", "samples of 4097 tokens")
    assert len(d.find_elements(By.CSS_SELECTOR, ".piece .boundary")) >= 3
    shot("recipe")

    step("the evaluation report of the version, in place")
    go("#/eval")
    text_of("#eval-summary", "documents sampled")
    assert d.find_elements(By.CSS_SELECTOR, "main figure img"), "no plots"
    shot("eval")

    step("a document of script and markup renders as text, and no script runs")
    go(f"#/doc/{E['XSS_ID']}")
    body = text_of("#doc-text", "<script>")
    assert "onerror" in body, body
    assert not d.find_elements(By.CSS_SELECTOR, "#doc-text script, #doc-text img, main img")
    assert d.execute_script("return window.__xss === undefined"), "a script of the document ran"
    assert d.title == "tokenlake explorer", d.title
    shot("document-with-markup")

    step("an admin is offered tagging")
    find("#signout").click()
    find("#login")
    sign_in(E["ADMIN_TOKEN"])
    go("#/versions")
    find("#tag-form")
    shot("versions-admin")
    print(json.dumps({"screenshots": sorted(os.listdir(SHOTS))}))
except Exception:
    shot("failure")
    print(f"page at failure: {d.current_url}\n{d.find_element(By.TAG_NAME, 'body').text[:2000]}", file=sys.stderr)
    raise
finally:
    d.quit()
