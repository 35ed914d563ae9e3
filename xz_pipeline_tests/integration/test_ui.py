"""The Dagster UI of `xz dev`, in a real browser, in the order a person meets it: the first mirror run starts
by itself, the lineage page shows every group, "Materialize all" for one connection succeeds, and a failing
blocking check shows its failing rows. Each step leaves a screenshot in `$XZ_HOME/ui/`."""

from __future__ import annotations

import time

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys

from xz_pipeline.core.store import Store

RUNS = """query ($filter: RunsFilter) { runsOrError(filter: $filter) { ... on Runs { results {
  runId status jobName startTime tags { key value } } } } }"""
FINISHED = {"SUCCESS", "FAILURE", "CANCELED"}
CONNECTION = "sandbox"  # the connection `xz dev` names its sandbox


def _runs(dev, **filters) -> list[dict]:
    return dev.graphql(RUNS, {"filter": filters})["runsOrError"]["results"]


def _wait_finished(dev, run_id: str, timeout: float = 240) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        (run,) = _runs(dev, runIds=[run_id])
        if run["status"] in FINISHED:
            return run["status"]
        time.sleep(2)
    raise AssertionError(f"run {run_id} did not finish within {timeout:.0f}s")


def _wait_idle(dev, timeout: float = 240) -> None:
    """No run queued or going (a scheduled tick may start one at any quarter hour)."""
    deadline = time.monotonic() + timeout
    while _runs(dev, statuses=["QUEUED", "NOT_STARTED", "STARTING", "STARTED", "CANCELING"]):
        assert time.monotonic() < deadline, f"runs still going after {timeout:.0f}s"
        time.sleep(2)


def _new_run(dev, before: set[str], timeout: float = 30) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        new = [r for r in _runs(dev) if r["runId"] not in before]
        if new:
            return new[0]
        time.sleep(1)
    raise AssertionError(f"no run was launched within {timeout:.0f}s")


def _open(browser, url: str) -> None:
    browser.get(url)
    for button in browser.find_elements(By.XPATH, "//button[normalize-space()='Skip']"):
        button.click()  # the community sign-up dialog of a fresh instance


def _text(browser) -> str:
    return browser.find_element(By.TAG_NAME, "body").text


def _wait_text(browser, *words: str, timeout: float = 30) -> str:
    deadline = time.monotonic() + timeout
    while True:
        text = _text(browser)
        if all(w in text for w in words) or time.monotonic() > deadline:
            return text
        time.sleep(0.5)


def test_the_first_mirror_run_starts_by_itself(dev):
    deadline = time.monotonic() + 60
    while not (first := _runs(dev, tags=[{"key": "dagster/sensor_name", "value": "first_mirror_sensor"}])):
        assert time.monotonic() < deadline, "first_mirror_sensor launched nothing within 60 s"
        time.sleep(2)
    (run,) = first
    tags = {t["key"]: t["value"] for t in run["tags"]}
    assert run["jobName"] == "mirror" and tags["dagster/partition"] == CONNECTION
    assert _wait_finished(dev, run["runId"]) == "SUCCESS"


def test_the_lineage_page_shows_every_group(dev, browser):
    from xz_pipeline.definitions import defs

    graph = defs.resolve_asset_graph()
    groups = {graph.get(key).group_name for key in graph.get_all_asset_keys()}
    _open(browser, f"{dev.url}/asset-groups")
    text = _wait_text(browser, "Global asset lineage", *groups)
    browser.save_screenshot(str(dev.shots / "lineage.png"))
    lines = text.split("\n")
    # each group twice: in the groups' list and as a node of the graph
    assert all(lines.count(g) >= 2 for g in groups), {g: lines.count(g) for g in groups}


def test_materialize_all_for_one_connection_succeeds(dev, browser):
    _wait_idle(dev)
    before = {r["runId"] for r in _runs(dev)}
    _open(browser, f"{dev.url}/locations/xz_pipeline/asset-groups/xero")
    browser.find_element(By.XPATH, "//button[contains(., 'Materialize all')]").click()
    browser.find_element(By.XPATH, "//*[contains(@class, 'TagSelector_tagSelectorContainer')]").click()
    browser.find_element(By.XPATH, f"//*[@role='menuitem'][.//*[normalize-space()='{CONNECTION}']]").click()
    browser.find_element(By.TAG_NAME, "body").send_keys(Keys.ESCAPE)  # close the partition list
    browser.save_screenshot(str(dev.shots / "materialize_all_dialog.png"))
    browser.find_element(By.XPATH, "//*[@role='dialog']//button[normalize-space()='Launch 1 run']").click()
    run = _new_run(dev, before)
    tags = {t["key"]: t["value"] for t in run["tags"]}
    assert tags.get("dagster/partition") == CONNECTION and "dagster/sensor_name" not in tags
    assert _wait_finished(dev, run["runId"]) == "SUCCESS"
    _open(browser, f"{dev.url}/runs/{run['runId']}")
    _wait_text(browser, "Success")
    browser.save_screenshot(str(dev.shots / "materialize_all_run.png"))


def test_a_failing_blocking_check_shows_its_failing_rows(dev, browser):
    """Broken as the suite breaks an invariant (tests/reconcile/test_assets.py): an invoice's total no longer
    adds up in the mirror; reconciling from the UI fails its blocking check, which lists the invoice."""
    _wait_idle(dev)
    store = Store(dev.home / "mirror" / f"{CONNECTION}.duckdb")
    with store.write() as con:
        (invoice,) = con.execute(
            "select invoice_id from xero.invoices where status = 'AUTHORISED' and type = 'ACCREC' "
            "and connection = ? order by invoice_id limit 1",
            [CONNECTION],
        ).fetchone()
        con.execute("update xero.invoices set total = total + 5 where invoice_id = ?", [invoice])
    before = {r["runId"] for r in _runs(dev)}
    _open(browser, f"{dev.url}/locations/xz_pipeline/asset-groups/reconcile")
    browser.find_element(By.XPATH, "//button[contains(., 'Materialize all')]").click()
    run = _new_run(dev, before)
    assert _wait_finished(dev, run["runId"]) == "FAILURE"
    _open(browser, f"{dev.url}/assets/discrepancies?view=checks")
    browser.find_element(By.XPATH, "//*[normalize-space()='invoice_totals_add_up']").click()
    text = _wait_text(browser, "This is a blocking asset check.", "failing_rows_preview")
    assert "Failed" in text and "fail invoice_totals_add_up: the connection is blocked" in text, text[-2000:]
    browser.save_screenshot(str(dev.shots / "failing_check.png"))
    row = "//tr[.//*[normalize-space()='failing_rows_preview']]"
    link = browser.find_element(By.XPATH, f"{row}//*[normalize-space()='[Show Markdown]' and not(*)]")
    browser.execute_script("arguments[0].scrollIntoView(); arguments[0].click();", link)
    text = _wait_text(browser, invoice)
    browser.save_screenshot(str(dev.shots / "failing_rows.png"))
    if invoice not in text:
        (dev.shots / "failing_rows.html").write_text(browser.page_source, encoding="utf-8")
    assert invoice in text, f"the failing rows do not show {invoice}: see {dev.shots / 'failing_rows.html'}"


@pytest.fixture(scope="module", autouse=True)
def _screenshots_listed(dev):
    yield
    shots = sorted(p.name for p in dev.shots.glob("*.png"))
    print(f"\nscreenshots in {dev.shots}: {', '.join(shots)}")
