"""The built-in dashboard, driven in headless Chromium through chromedriver."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from selenium import webdriver
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import WebDriverWait

from tests.app.conftest import TOKEN, RunningApp

# Upper bound in seconds for the page to reach a state, so that a broken
# page fails the test instead of hanging it.
WAIT_S = 60
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-quic",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-domain-reliability",
    "--disable-client-side-phishing-detection",
    "--no-pings",
]


def find_binary(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.fail(
            f"{name} not found: install the Debian packages chromium and chromium-driver "
            "(scripts/test installs them when it can)"
        )
    return path


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[WebDriver]:
    options = Options()
    options.binary_location = find_binary("chromium")
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={tmp_path / 'chromium-profile'}")
    # An explicit chromedriver path keeps Selenium Manager, which would look
    # for drivers on the network, from running.
    service = Service(executable_path=find_binary("chromedriver"))
    driver = webdriver.Chrome(options=options, service=service)
    try:
        yield driver
    finally:
        driver.quit()


def wait_for_script(driver: WebDriver, script: str, expected: object) -> None:
    """Poll a JavaScript expression in the page until it returns `expected`."""
    last: list[object] = []

    def reached(_: WebDriver) -> bool:
        last[:] = [driver.execute_script(f"return {script}")]
        return last[0] == expected

    try:
        WebDriverWait(driver, WAIT_S, poll_frequency=0.1).until(reached)
    except Exception as exc:
        error = driver.execute_script("return document.getElementById('error').textContent")
        raise AssertionError(
            f"{script} is {last[0] if last else None!r}, expected {expected!r}; "
            f"page error: {error!r}"
        ) from exc


def row_status(job_id: str) -> str:
    return f"document.querySelector('tr[data-job-id=\"{job_id}\"]')?.dataset.status ?? null"


async def test_dashboard_page_headers(running_app: RunningApp) -> None:
    async with httpx.AsyncClient(base_url=running_app.base_url) as anonymous:
        page = await anonymous.get("/dashboard")
        script = await anonymous.get("/dashboard/static/dashboard.js")

    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert "script-src 'self'" in page.headers["Content-Security-Policy"]
    assert page.headers["Referrer-Policy"] == "no-referrer"
    assert "kaboom-ingest jobs" in page.text
    assert script.status_code == 200
    assert "EventSource" in script.text


async def test_dashboard_shows_job_until_completed(
    running_app: RunningApp, browser: WebDriver
) -> None:
    earlier = (
        await running_app.client.post("/api/v1/ingest/run-daily", json={"tickers": ["7203.T"]})
    ).json()["job_id"]
    await running_app.wait_for_status(earlier, {"completed"})

    await asyncio.to_thread(browser.get, f"{running_app.base_url}/dashboard#token={TOKEN}")
    await asyncio.to_thread(
        wait_for_script, browser, "document.getElementById('connection').dataset.state", "live"
    )
    await asyncio.to_thread(wait_for_script, browser, row_status(earlier), "completed")
    response = await running_app.client.post(
        "/api/v1/ingest/run-daily", json={"tickers": ["7203.T", "7974.T"]}
    )
    job_id = response.json()["job_id"]
    await asyncio.to_thread(wait_for_script, browser, row_status(job_id), "completed")

    url = await asyncio.to_thread(lambda: browser.current_url)
    assert TOKEN not in url
    row = await asyncio.to_thread(
        browser.find_element, By.CSS_SELECTOR, f'tr[data-job-id="{job_id}"]'
    )
    assert "100%" in row.text
    await asyncio.to_thread(row.click)
    await asyncio.to_thread(
        wait_for_script,
        browser,
        "document.querySelector('#timeline-events li:last-child')?.dataset.type ?? null",
        "completed",
    )
    types = await asyncio.to_thread(
        browser.execute_script,
        "return [...document.querySelectorAll('#timeline-events li')].map(li => li.dataset.type)",
    )
    assert types[:2] == ["created", "started"]
    assert types[-1] == "completed"
    assert "progress" in types
    error_hidden = await asyncio.to_thread(
        browser.execute_script, "return document.getElementById('error').hidden"
    )
    assert error_hidden
