"""The operator dashboard in a real headless Chromium (Debian's), against a running CSMS.

A fake charger speaks real OCPP 1.6 to the CSMS while the browser has the page open, so the
tests cover the whole path: OCPP frame -> service -> bus -> SSE -> script -> DOM. SQLite only:
the dashboard reads the services, and the services are tested on both databases elsewhere.
The view helpers (rounding that must match the script, log labelling) are tested at the end
without a browser.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import pytest
from playwright.async_api import Browser, BrowserContext, Page, async_playwright, expect

from chargegrid.app import Csms, open_csms
from chargegrid.core.model import IdToken, Role
from chargegrid.services.platform import Platform
from chargegrid.testing import FakeCharger, fake_charger
from chargegrid.web import views
from tests.conftest import PASSWORD, settings_for

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
SCREENSHOT = Path("/tmp/dashboard.png")
LIVE_MS = 2000  # the promise: a status change shows within 2 seconds

BOOT = {"chargePointVendor": "Acme", "chargePointModel": "Volt-22", "chargePointSerialNumber": "SN-1",
        "firmwareVersion": "1.2.3"}


def now(offset_s: float = 0) -> str:
    return (datetime.now(UTC) + timedelta(seconds=offset_s)).isoformat().replace("+00:00", "Z")


def status(connector: int, state: str, error: str = "NoError") -> dict[str, Any]:
    return {"connectorId": connector, "errorCode": error, "status": state, "timestamp": now()}


@pytest.fixture
async def csms(tmp_path: Path) -> AsyncIterator[Csms]:
    """SQLite only (overrides the backend-parametrized fixture of conftest)."""
    async with open_csms(settings_for(f"sqlite:///{tmp_path}/db.sqlite")) as c:
        yield c


@pytest.fixture
async def key(csms: Csms) -> str:
    # A viewer key: the dashboard only reads, so the least role must be enough.
    return await csms.platform.admin.create_api_key(Role.VIEWER, "dashboard tests")


@pytest.fixture
def chromium() -> Path:
    """Debian's chromium: CI must have it (a silent skip would hide a broken dashboard)."""
    if not CHROMIUM.exists():
        if os.environ.get("CI"):
            pytest.fail(f"{CHROMIUM} is missing: CI must install Debian's chromium (.ci/run does)")
        pytest.skip(f"{CHROMIUM} is not installed (apt-get install chromium)")
    return CHROMIUM


@pytest.fixture
async def browser(chromium: Path) -> AsyncIterator[Browser]:
    async with async_playwright() as p:
        b = await p.chromium.launch(executable_path=str(chromium), args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            await b.close()


@pytest.fixture
async def context(browser: Browser, csms: Csms) -> AsyncIterator[BrowserContext]:
    ctx = await browser.new_context(base_url=csms.http_url, viewport={"width": 1360, "height": 820})
    # The dashboard must never reach beyond its own origin (no CDN, no fonts).
    external: list[str] = []
    ctx.on("request", lambda r: None if r.url.startswith(csms.http_url) or r.url.startswith("data:")
           else external.append(r.url))
    try:
        yield ctx
    finally:
        await ctx.close()
    assert external == []


@pytest.fixture
async def page(context: BrowserContext, key: str) -> AsyncIterator[Page]:
    """A signed-in page; any uncaught script error fails the test."""
    pg = await context.new_page()
    errors: list[str] = []
    pg.on("pageerror", lambda e: errors.append(str(e)))
    await pg.goto(f"/login?key={key}")
    assert pg.url.endswith("/")
    yield pg
    assert errors == []


async def live(page: Page) -> None:
    """Wait until the page's event stream is open and the page resynchronised."""
    await expect(page.locator("body")).to_have_attribute("data-live", "open", timeout=5000)


async def booted(cp: FakeCharger, *connectors: int) -> None:
    await cp.call("BootNotification", BOOT)
    for c in connectors:
        await cp.call("StatusNotification", status(c, "Available"))


@pytest.mark.browser
async def test_login_then_chargers_page(csms: Csms, context: BrowserContext, key: str) -> None:
    await csms.platform.chargers.register("CP-1", PASSWORD)
    await csms.platform.chargers.register("CP-2", PASSWORD)
    async with fake_charger(csms.ocpp_url, "CP-1", password=PASSWORD) as cp:
        await booted(cp, 1, 2)
        await cp.call("StatusNotification", status(2, "Faulted", "GroundFailure"))
        page = await context.new_page()
        await page.goto("/login")
        await page.fill("input[name=key]", key)
        await page.click("button[type=submit]")
        await page.wait_for_url("**/")

        row = page.locator('[data-charger-row="CP-1"]')
        await expect(row).to_contain_text("CP-1")
        await expect(row.locator('[data-charger-state="CP-1"]')).to_have_text("connected")
        await expect(row).to_contain_text("Acme Volt-22")
        await expect(row).to_contain_text("1.6")
        ok = page.locator('[data-connector="CP-1/1/1"]')
        await expect(ok).to_have_text("Available")
        await expect(ok).to_have_class("badge s-available")
        bad = page.locator('[data-connector="CP-1/2/2"]')
        await expect(bad).to_have_text("Faulted")
        await expect(bad).to_have_class("badge s-faulted")
        await expect(bad).to_have_attribute("title", "GroundFailure")
        await expect(page.locator('[data-charger-state="CP-2"]')).to_have_text("offline")
        await expect(page.locator("[data-count=online]")).to_have_text("1")
        await expect(page.locator("[data-count=total]")).to_have_text("2")

        # Badges are coloured by state: the CSS really paints them (green / red).
        colors = await ok.evaluate("e => getComputedStyle(e).backgroundColor"), \
            await bad.evaluate("e => getComputedStyle(e).backgroundColor")
        assert colors[0] != colors[1]

        cookies = {c["name"]: c for c in await context.cookies()}
        assert cookies["chargegrid_key"]["httpOnly"] is True
        assert cookies["chargegrid_key"]["sameSite"] == "Lax"


@pytest.mark.browser
async def test_status_change_shows_live_without_reload(csms: Csms, page: Page) -> None:
    await csms.platform.chargers.register("CP-1", PASSWORD)
    async with fake_charger(csms.ocpp_url, "CP-1", password=PASSWORD) as cp:
        await booted(cp, 1)
        await page.goto("/")
        await live(page)
        # A marker on window survives only if the page is never reloaded.
        await page.evaluate("window.__sameDocument = true")
        badge = page.locator('[data-connector="CP-1/1/1"]')
        await expect(badge).to_have_text("Available")

        await cp.call("StatusNotification", status(1, "Charging"))
        await expect(badge).to_have_text("Charging", timeout=LIVE_MS)
        await expect(badge).to_have_class("badge s-occupied", timeout=LIVE_MS)

        await cp.call("StatusNotification", status(1, "Reserved"))
        await expect(badge).to_have_class("badge s-reserved", timeout=LIVE_MS)

        # A connector the page has never shown appears too (its row is re-fetched).
        await cp.call("StatusNotification", status(2, "Unavailable"))
        await expect(page.locator('[data-connector="CP-1/2/2"]')).to_have_text("Unavailable", timeout=LIVE_MS)
        await expect(page.locator("[data-count=online]")).to_have_text("1", timeout=LIVE_MS)

        await page.screenshot(path=str(SCREENSHOT), full_page=True)
        assert await page.evaluate("window.__sameDocument") is True
    # The charger goes away: the page says so, still without a reload.
    await expect(page.locator('[data-charger-state="CP-1"]')).to_have_text("offline", timeout=LIVE_MS)
    await expect(page.locator("[data-count=online]")).to_have_text("0", timeout=LIVE_MS)
    assert await page.evaluate("window.__sameDocument") is True


def meter(register_wh: float, power_w: float, soc: int) -> dict[str, Any]:
    return {
        "timestamp": now(),
        "sampledValue": [
            {"value": f"{register_wh / 1000:.3f}", "unit": "kWh", "measurand": "Energy.Active.Import.Register"},
            {"value": str(power_w), "unit": "W", "measurand": "Power.Active.Import"},
            {"value": str(soc), "unit": "Percent", "measurand": "SoC", "location": "EV"},
        ],
    }


@pytest.mark.browser
async def test_sessions_page_updates_power_and_energy(csms: Csms, page: Page) -> None:
    await csms.platform.chargers.register("CP-1", PASSWORD)
    await csms.platform.admin.upsert_token(IdToken(token="TAG-<1>"))
    async with fake_charger(csms.ocpp_url, "CP-1", password=PASSWORD) as cp:
        await booted(cp, 1)
        await page.goto("/sessions")
        await live(page)
        await expect(page.locator("[data-count=sessions]")).to_have_text("0")

        started = await cp.call("StartTransaction", {"connectorId": 1, "idTag": "TAG-<1>", "meterStart": 10_000,
                                                     "timestamp": now()})
        tx = started["transactionId"]
        row = page.locator(f'[data-session="{tx}"]')
        # The new session's row arrives without a reload, token escaped as text.
        await expect(row).to_contain_text("TAG-<1>", timeout=LIVE_MS)
        await expect(row.locator("[data-field=energy]")).to_have_text("0.00")

        await cp.call("MeterValues", {"connectorId": 1, "transactionId": tx, "meterValue": [meter(11_500, 7_360, 42)]})
        await expect(row.locator("[data-field=power]")).to_have_text("7.4", timeout=LIVE_MS)
        await expect(row.locator("[data-field=energy]")).to_have_text("1.50", timeout=LIVE_MS)
        await expect(row.locator("[data-field=soc]")).to_have_text("42 %", timeout=LIVE_MS)

        await cp.call("MeterValues", {"connectorId": 1, "transactionId": tx, "meterValue": [meter(12_345, 11_040, 47)]})
        await expect(row.locator("[data-field=power]")).to_have_text("11.0", timeout=LIVE_MS)
        await expect(row.locator("[data-field=energy]")).to_have_text("2.35", timeout=LIVE_MS)
        await expect(page.locator("[data-count=sessions]")).to_have_text("1", timeout=LIVE_MS)
        await expect(page.locator("[data-count=power]")).to_have_text("11.0", timeout=LIVE_MS)

        # What the script wrote equals what the server renders after a reload.
        await page.reload()
        await live(page)
        await expect(row.locator("[data-field=power]")).to_have_text("11.0")
        await expect(row.locator("[data-field=energy]")).to_have_text("2.35")

        await cp.call("StopTransaction", {"transactionId": tx, "meterStop": 13_000, "timestamp": now(),
                                          "reason": "EVDisconnected"})
        await expect(row).to_have_count(0, timeout=LIVE_MS)
        done = page.locator(f'[data-completed="{tx}"]')
        await expect(done).to_contain_text("3.00", timeout=LIVE_MS)
        await expect(done).to_contain_text("EVDisconnected")
        await expect(page.locator("[data-count=sessions]")).to_have_text("0", timeout=LIVE_MS)


@pytest.mark.browser
async def test_charger_page_message_log_newest_first(csms: Csms, page: Page) -> None:
    await csms.platform.chargers.register("CP-1", PASSWORD)
    async with fake_charger(csms.ocpp_url, "CP-1", password=PASSWORD) as cp:
        # A hostile vendor string must show as text, never as markup.
        await cp.call("BootNotification", {**BOOT, "chargePointVendor": "<b>Evil</b>"})
        await cp.call("Heartbeat", {})
        await cp.call("StatusNotification", status(1, "Available"))
        await page.goto("/chargers/CP-1")
        await live(page)

        actions = page.locator("table.log tbody tr td:nth-child(4)")
        kinds = page.locator("table.log tbody tr td:nth-child(3)")
        await expect(actions).to_have_text(["StatusNotification", "StatusNotification", "Heartbeat", "Heartbeat",
                                            "BootNotification", "BootNotification"])
        await expect(kinds).to_have_text(["RESULT", "CALL", "RESULT", "CALL", "RESULT", "CALL"])
        await expect(page.locator("table.log tbody tr").first).to_contain_text("CSMS → charger")

        vendor = page.locator('[data-charger-vendor="CP-1"]')
        await expect(vendor).to_have_text("<b>Evil</b> Volt-22")
        assert await vendor.locator("b").count() == 0
        await expect(page.locator('[data-connector="CP-1/1/1"]')).to_have_text("Available")
        await expect(page.locator("dl.details")).to_contain_text("SN-1")

        # New frames appear at the top while the page stays open (periodic or event refresh).
        await cp.call("DataTransfer", {"vendorId": "acme", "messageId": "hello"})
        await expect(actions.nth(1)).to_have_text("DataTransfer", timeout=5000)
        await cp.call("StatusNotification", status(1, "Charging"))
        await expect(actions.first).to_have_text("StatusNotification", timeout=LIVE_MS + 1000)
        await expect(page.locator('[data-connector="CP-1/1/1"]')).to_have_text("Charging", timeout=LIVE_MS)

    missing = await page.goto("/chargers/NOPE")
    assert missing is not None and missing.status == 404


@pytest.mark.browser
async def test_login_required_and_bad_key(csms: Csms, context: BrowserContext, key: str) -> None:
    page = await context.new_page()
    for path in ("/", "/sessions", "/chargers/CP-1"):
        await page.goto(path)
        assert page.url.endswith("/login"), path
        await expect(page.locator("input[name=key]")).to_be_visible()

    answer = await page.goto("/login?key=cgk_not-a-real-key")
    assert answer is not None and answer.status == 403
    await expect(page.locator(".error")).to_have_text("Unknown or revoked API key.")
    assert await context.cookies() == []
    await page.goto("/")
    assert page.url.endswith("/login")

    # Fragments answer 401 (the script then goes to the login page) instead of redirecting.
    fragment = await context.request.get("/fragments/chargers")
    assert fragment.status == 401

    # A good key gets in; signing out takes the cookie away again.
    await page.goto(f"/login?key={key}")
    assert page.url.endswith("/")
    await expect(page.locator("h1")).to_have_text("Chargers")
    await page.click("text=Sign out")
    assert page.url.endswith("/login")
    await page.goto("/sessions")
    assert page.url.endswith("/login")



@pytest.mark.browser
async def test_reconnects_after_server_restart(tmp_path: Path, browser: Browser) -> None:
    """The CSMS restarts under an open page: the page says it lost the stream, reconnects on
    its own once the server is back, and shows what changed meanwhile, without a reload."""
    db = f"sqlite:///{tmp_path}/db.sqlite"
    async with open_csms(settings_for(db)) as first:
        key = await first.platform.admin.create_api_key(Role.VIEWER)
        await first.platform.chargers.register("CP-1", PASSWORD)
        async with fake_charger(first.ocpp_url, "CP-1", password=PASSWORD) as cp:
            await booted(cp, 1)
        port = first.http_port
        ctx = await browser.new_context(base_url=first.http_url)
        page = await ctx.new_page()
        await page.goto(f"/login?key={key}")
        await live(page)
        await page.evaluate("window.__sameDocument = true")
    try:
        await expect(page.locator("body")).not_to_have_attribute("data-live", "open", timeout=5000)
        await expect(page.locator("[data-live-indicator]")).to_have_text("reconnecting")
        async with open_csms(settings_for(db, http_port=port)) as second, \
                fake_charger(second.ocpp_url, "CP-1", password=PASSWORD) as cp:
            await cp.call("StatusNotification", status(1, "Faulted", "OverCurrentFailure"))
            badge = page.locator('[data-connector="CP-1/1/1"]')
            await expect(badge).to_have_text("Faulted", timeout=5000)
            await expect(badge).to_have_class("badge s-faulted")
            await live(page)
            await cp.call("StatusNotification", status(1, "Available"))
            await expect(badge).to_have_text("Available", timeout=LIVE_MS)
            assert await page.evaluate("window.__sameDocument") is True
    finally:
        await ctx.close()


# -- the view helpers, without a browser -------------------------------------------------------
def test_numbers_round_half_up_like_the_script() -> None:
    # dashboard.js computes floor(x + 0.5) on the same float: both sides must agree.
    assert [views.kwh(wh) for wh in (0, 4, 5, 125, 1500, 2345)] == ["0.00", "0.00", "0.01", "0.13", "1.50", "2.35"]
    assert [views.kw(w) for w in (None, 0, 49, 50, 7360, 11040)] == ["—", "0.0", "0.0", "0.1", "7.4", "11.0"]
    assert [views.soc(p) for p in (None, 41.5, 42.4)] == ["—", "42 %", "42 %"]
    assert views.when(datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)) == "2026-01-02 03:04:05"
    assert views.when(datetime(2026, 1, 2, 3, 4, 5)) == "2026-01-02 03:04:05"  # naive = UTC
    assert views.version_label("ocpp2.0.1") == "2.0.1"


def test_message_log_labels_answers_with_the_action_they_answer() -> None:
    frames = [  # newest first, as the gateway returns them
        {"at": 4.0, "direction": "in", "frame": '[3,"c1",{"status":"Accepted"}]'},
        {"at": 3.0, "direction": "out", "frame": '[2,"c1","Reset",{"type":"Soft"}]'},
        {"at": 2.0, "direction": "out", "frame": '[4,"1","FormationViolation","bad",{}]'},
        {"at": 1.0, "direction": "in", "frame": '[2,"1","Heartbeat",{}]'},
        {"at": 0.5, "direction": "in", "frame": "not json <script>" + "x" * 3000},
    ]
    gateway = SimpleNamespace(message_log=lambda charger_id, limit: frames[:limit])
    platform = cast(Platform, SimpleNamespace(gateway=gateway))
    log = views.message_log(platform, "CP-1")
    assert [(e.kind, e.action) for e in log] == [
        ("RESULT", "Reset"), ("CALL", "Reset"), ("ERROR", "Heartbeat"), ("CALL", "Heartbeat"), ("?", ""),
    ]
    assert len(log[-1].text) == views.FRAME_DISPLAY_CHARS and log[-1].truncated == 17 + 3000 - 2000
