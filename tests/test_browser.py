"""
The page in a real browser: Debian's headless Chromium, driven by
Playwright, against a real C{xform serve}.  The last test leaves a
screenshot of the page at L{SCREENSHOT}.
"""

import datetime
import re

import pytest
from playwright.sync_api import Page, expect, sync_playwright
from twisted.internet.task import Clock

from service import builtinCatalogue, transforms
from tests.helpers import POEMS, ROOT, GatewayProcess, freePort

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]

#: The transforms a gateway offers.
TRANSFORMS = [entry.name for entry in builtinCatalogue(Clock())]

#: Where the screenshot of the page is saved.
SCREENSHOT = ROOT / "artifacts" / "page.png"

#: The gateway's poem limit: every bundled poem fits, a pasted page does not.
MAX_POEM_BYTES = 5000

#: How long the page may take to do something, in milliseconds.
PATIENCE = 20_000

#: The longest the page waits before it tries to connect again, in
#: milliseconds (RETRY_MAX_MS in gateway/static/app.js).
RETRY_MAX_MS = 8000

#: Where the page's fake clock starts, in tests that install one.
CLOCK_START = datetime.datetime(2026, 1, 1)


#: An upstream that cannot list its transforms: a netstring server (none
#: listens there; listing never asks it).
UPSTREAM = f"netstring://127.0.0.1:{freePort()}"


#: The options of every gateway the page is tested against.
OPTIONS = ("--max-poem-bytes", str(MAX_POEM_BYTES), "--upstream", f"tut={UPSTREAM}")


@pytest.fixture(scope="module")
def gateway():
    with GatewayProcess(*OPTIONS, listeners=("web",)) as process:
        yield process


@pytest.fixture(scope="module")
def browser():
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture(scope="module")
def desktop(browser):
    """
    A desktop-sized browser context, for a page per test: the page keeps
    nothing in storage, so a new page starts afresh.
    """
    context = browser.new_context(viewport={"width": 1200, "height": 900})
    yield context
    context.close()


@pytest.fixture
def page(desktop, gateway):
    page = desktop.new_page()
    errors = []
    page.on("pageerror", lambda error: errors.append(error))
    open_(page, gateway)
    yield page
    page.close()
    assert errors == []


def open_(page: Page, gateway) -> None:
    """
    Load the page and wait until it is connected and knows the transforms.
    """
    page.goto(f"http://127.0.0.1:{gateway.ports['web']}/")
    expectConnected(page)


def expectConnected(page: Page) -> None:
    # Wait for the change as it happens, rather than by polling at intervals
    # as the assertions below do when they do not hold yet.
    page.locator("#connection[data-state='open']").wait_for(timeout=PATIENCE)
    expect(page.locator("#connection")).to_have_attribute("data-state", "open")
    expect(page.get_by_text("Connected", exact=True)).to_be_visible()
    expect(page.get_by_label("Transform", exact=True).locator("option")).to_have_text([*TRANSFORMS, "tut:*"])
    expect(page.get_by_role("button", name="Transform")).to_be_enabled()


def transformed(page: Page):
    return page.locator("#result")


def test_chooseATransformAndABundledPoem(page):
    """
    Pick piglatin and Poe's sonnet: the sonnet in pig latin appears beside
    the original, with the round trip.
    """
    page.get_by_label("Transform", exact=True).select_option("piglatin")
    expect(page.locator("#description")).to_have_text("every word in pig latin: science becomes iencescay")
    page.get_by_label("Bundled poem").select_option("science")
    expect(page.get_by_label("Text", exact=True)).to_have_value(POEMS["science"])
    page.get_by_role("button", name="Transform").click()
    expect(transformed(page)).to_have_text(transforms.piglatin(POEMS["science"]), timeout=PATIENCE)
    expect(page.locator("#original")).to_have_text(POEMS["science"])
    expect(page.locator("#result-meta")).to_have_text(re.compile(r"^· piglatin · \d+(\.\d)? ms$"))


def test_pasteAPoemAndChainTwoTransforms(page):
    """
    Paste a poem, add cummingsify then reverse, and run with Ctrl+Enter.
    """
    poem = "THE FIRST LINE\nThe Second Line\nthe third line"
    page.get_by_label("Text", exact=True).fill(poem)
    expect(page.get_by_label("Bundled poem")).to_have_value("")
    for name in ("cummingsify", "reverse"):
        page.get_by_label("Transform", exact=True).select_option(name)
        page.get_by_role("button", name="Add step").click()
    expect(page.get_by_label("Steps, applied left to right")).to_have_value("cummingsify | reverse")
    expect(page.get_by_role("list", name="Steps").locator("li")).to_have_count(2)
    page.get_by_label("Text", exact=True).press("Control+Enter")
    expect(transformed(page)).to_have_text(transforms.reverse(transforms.cummingsify(poem)), timeout=PATIENCE)
    expect(page.locator("#history tr").first).to_contain_text("cummingsify|reverse")
    expect(page.locator("#history tr").first).to_contain_text("ok")

    page.get_by_role("button", name="Remove step 1, cummingsify").click()
    expect(page.get_by_label("Steps, applied left to right")).to_have_value("reverse")


def test_anUpstreamThatCannotList(page):
    """
    The listing's entry for an upstream that cannot list its transforms
    says why and cannot be chosen; a step under its prefix is described by
    it, whatever the case of its name.
    """
    wildcard = page.get_by_label("Transform", exact=True).locator("option", has_text="tut:*")
    expect(wildcard).to_be_disabled()
    page.get_by_label("Steps, applied left to right").fill("Cummingsify | tut:cummingsify")
    steps = page.get_by_role("list", name="Steps")
    expect(steps.locator("li").first).to_contain_text("lowercase everything")
    expect(steps.locator("li").last).to_contain_text(f"any transform of {UPSTREAM}, which cannot list them")


def test_unknownTransform(page):
    page.get_by_label("Steps, applied left to right").fill("cummingsify | nope")
    expect(page.get_by_role("list", name="Steps")).to_contain_text("not a transform this gateway knows")
    page.get_by_role("button", name="Transform").click()
    expect(page.get_by_role("alert")).to_have_text("Unknown transform 'nope'.", timeout=PATIENCE)
    expect(page.locator("#history tr").first).to_contain_text("unknown-transform")


def test_poemTooLarge(page):
    page.get_by_label("Text", exact=True).fill("A line of a poem that is far too long.\n" * 200)
    expect(page.locator("#poem-size")).to_have_text("7,800 bytes")
    page.get_by_role("button", name="Transform").click()
    expect(page.get_by_role("alert")).to_have_text(
        f"The poem is 7,800 bytes; this gateway accepts at most {MAX_POEM_BYTES:,} (--max-poem-bytes).",
        timeout=PATIENCE,
    )
    page.get_by_label("Text", exact=True).fill("short")
    page.get_by_role("button", name="Transform").click()
    expect(transformed(page)).to_have_text("short", timeout=PATIENCE)
    expect(page.get_by_role("alert")).to_be_hidden()


def test_labelledControls(page):
    """
    Every form control has a label, every button a name.
    """
    unlabelled = page.evaluate(
        """() => [...document.querySelectorAll("input, select, textarea")]
                 .filter((control) => control.labels.length === 0).map((control) => control.id)"""
    )
    assert unlabelled == []
    nameless = page.evaluate(
        """() => [...document.querySelectorAll("button")]
                 .filter((button) => !(button.getAttribute("aria-label") || button.textContent.trim()))
                 .map((button) => button.outerHTML)"""
    )
    assert nameless == []


def test_phoneWidth(browser, gateway):
    """
    On a phone-width window nothing sticks out sideways, and the original
    and the transformed poem stack.
    """
    context = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True)
    try:
        page = context.new_page()
        open_(page, gateway)
        page.get_by_role("button", name="Transform").click()
        expect(transformed(page)).not_to_be_empty(timeout=PATIENCE)
        assert page.evaluate("document.documentElement.scrollWidth") <= 390
        original, result = page.locator("#original").bounding_box(), transformed(page).bounding_box()
        assert result["y"] > original["y"] + original["height"] - 1
    finally:
        context.close()


def test_reconnectsAfterARestart(desktop):
    """
    Stop the gateway: the page says it is disconnected and retries; start
    it again on the same port: the page reconnects by itself, when its
    retry timer fires, and works.  The page's timers run on Playwright's
    fake clock, paused once the page is connected and moved on once the
    gateway is back.
    """
    first = GatewayProcess(*OPTIONS, listeners=("web",)).start()
    port = first.ports["web"]
    page = desktop.new_page()
    try:
        page.clock.install(time=CLOCK_START)
        open_(page, first)
        # Time flows on an installed clock until paused: from here on, the
        # page's timers fire only when run_for moves the clock.
        page.clock.pause_at(CLOCK_START + datetime.timedelta(hours=1))
        assert first.stop() == 0
        expect(page.locator("#connection")).to_have_attribute("data-state", "closed", timeout=PATIENCE)
        expect(page.locator("#connection-text")).to_contain_text("Disconnected")
        expect(page.get_by_role("button", name="Retry now")).to_be_visible()

        with GatewayProcess(
            *OPTIONS, "--web", f"tcp:{port}:interface=127.0.0.1", listeners=("web",)
        ) as second:
            assert second.ports["web"] == port
            expect(page.locator("#connection")).to_have_attribute("data-state", "closed")
            page.clock.run_for(RETRY_MAX_MS)
            expectConnected(page)
            page.get_by_label("Text", exact=True).fill("AFTER THE RESTART")
            page.get_by_label("Transform", exact=True).select_option("cummingsify")
            page.get_by_role("button", name="Transform").click()
            expect(transformed(page)).to_have_text("after the restart", timeout=PATIENCE)
    finally:
        page.close()
        first.stop()


def test_idleCloseIsQuiet(desktop):
    """
    The gateway closes a WebSocket left unused (C{--ws-idle-timeout}); the
    page connects again at once without saying it was disconnected, and
    works.
    """
    with GatewayProcess(*OPTIONS, "--ws-idle-timeout", "1", listeners=("web",)) as gateway:
        page = desktop.new_page()
        try:
            open_(page, gateway)
            page.evaluate(
                """() => {
                    window.connectionStates = [];
                    new MutationObserver(() => window.connectionStates.push(
                        document.querySelector("#connection").dataset.state
                    )).observe(document.querySelector("#connection"), {attributes: true});
                }"""
            )
            gateway.waitForLog(lambda: gateway.logged("idle"), what="an idle close")
            page.wait_for_function("window.connectionStates.includes('connecting')", timeout=PATIENCE)
            expectConnected(page)
            assert "closed" not in page.evaluate("window.connectionStates")
            page.get_by_label("Text", exact=True).fill("STILL HERE")
            page.get_by_role("button", name="Transform").click()
            expect(transformed(page)).to_have_text("still here", timeout=PATIENCE)
        finally:
            page.close()


def test_screenshot(page):
    """
    The page after a transform, saved for the README (copied to
    docs/page.png by hand when the page changes).
    """
    page.get_by_label("Bundled poem").select_option("science")
    expect(page.get_by_label("Text", exact=True)).to_have_value(POEMS["science"])
    for name in ("titlecase", "reverse"):
        page.get_by_label("Transform", exact=True).select_option(name)
        page.get_by_role("button", name="Add step").click()
    page.get_by_role("button", name="Transform").click()
    expect(transformed(page)).to_have_text(
        transforms.reverse(transforms.titlecase(POEMS["science"])), timeout=PATIENCE
    )
    SCREENSHOT.parent.mkdir(exist_ok=True)
    page.screenshot(path=SCREENSHOT, full_page=True)
    assert SCREENSHOT.stat().st_size > 10_000
