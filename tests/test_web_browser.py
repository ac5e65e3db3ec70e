"""The web map and the herder page in a real headless Chromium (Playwright), served by uvicorn."""

from __future__ import annotations

import io
import socket
import threading
import time

import numpy as np
import pytest
import uvicorn
from PIL import Image
from test_api_helpers import PARCELS, PASSWORD, SURVEY, build_workspace

from belcheer.api import create_app
from belcheer.api.messages import catalogue, class_label

pytestmark = pytest.mark.browser

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--headless", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run",
        # MapLibre needs WebGL: software rendering (SwiftShader) when there is no GPU
        "--use-angle=swiftshader", "--enable-unsafe-swiftshader"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    ws, settings = build_workspace(tmp_path_factory.mktemp("web") / "ws")
    # fractional cover of the published survey: P1's lush NDVI over much bare ground
    ws.catalog.put_stats(SURVEY, "2026-07-15", "cover", [
        {"parcel_id": "P1", "green_cover": 0.40, "dry_cover": 0.15, "bare_cover": 0.45,
         "cover_valid_fraction": 0.95}])
    port = _free_port()
    srv = uvicorn.Server(uvicorn.Config(create_app(settings), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    for _ in range(200):
        if srv.started:
            break
        time.sleep(0.05)
    assert srv.started, "uvicorn did not start"
    yield ws, f"http://127.0.0.1:{port}"
    srv.should_exit = True
    thread.join(10)


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield b
        b.close()


def wait_js(page, expression: str, timeout_ms: int = 30_000) -> None:
    """Wait until ``expression`` is truthy in the page. Playwright's wait_for_function compiles its
    predicate with eval inside the page, which the pages' Content-Security-Policy (no
    'unsafe-eval') forbids; page.evaluate goes through the DevTools protocol instead."""
    end = time.monotonic() + timeout_ms / 1000
    while not page.evaluate(expression):
        assert time.monotonic() < end, f"timed out waiting for {expression}"
        page.wait_for_timeout(100)


def test_web_map_draws_tiles_and_shows_parcel_stats(server, browser, artifacts):
    ws, base = server
    page = browser.new_page(viewport={"width": 1200, "height": 800})
    tiles: list[int] = []
    page.on("response", lambda r: tiles.append(r.status) if "/tiles/" in r.url else None)
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    # the map must work under the page's Content-Security-Policy: any violation is an error
    page.on("console", lambda m: errors.append(m.text) if "Content Security Policy" in m.text else None)
    page.goto(f"{base}/?lang=en")
    page.wait_for_selector("body[data-ready=yes]", timeout=30_000)
    wait_js(page, "window.belcheerMap && window.belcheerMap.areTilesLoaded()")
    page.wait_for_timeout(500)
    assert not errors, errors
    assert page.locator("#cb-soums").is_checked()  # the workspace's soum boundary is drawn
    assert tiles and all(s == 200 for s in tiles), tiles
    shot = page.locator("#map").screenshot(path=str(artifacts / "web-map-en.png"))
    img = np.asarray(Image.open(io.BytesIO(shot)).convert("RGB")).astype(int)
    background = np.array([0xEE, 0xF0, 0xE6])
    drawn = np.abs(img - background).sum(axis=2) > 30
    assert drawn.mean() > 0.2, f"only {drawn.mean():.1%} of the map canvas has tile pixels"
    # click the middle of parcel P2 and read its statistics from the popup
    p2 = next(p for p in PARCELS if p[0] == "P2")
    import geopandas as gpd
    from test_api_helpers import parcel_geoms

    centre = parcel_geoms().to_crs(4326).set_index("parcel_id").geometry.loc["P2"].centroid
    xy = page.evaluate(f"(() => {{ const p = window.belcheerMap.project([{centre.x}, {centre.y}]); return [p.x, p.y]; }})()")
    box = page.locator("#map").bounding_box()
    page.mouse.click(box["x"] + xy[0], box["y"] + xy[1])
    popup = page.locator(".maplibregl-popup .popup")
    popup.wait_for(timeout=10_000)
    assert popup.locator("h3").inner_text() == p2[1]
    assert popup.locator(".soum").inner_text() == p2[2]
    api = ws.catalog.stats(parcel_id="P2", index_name="ndvi")
    latest = max(api, key=lambda r: r["date"])  # officers see all; the public sees the published survey
    shown = float(popup.locator(".index-mean").inner_text())
    published = next(r for r in api if r["survey"] != "hidden-2026-08")
    assert shown == pytest.approx(published["mean"], abs=5e-4)
    assert latest["mean"] != pytest.approx(shown, abs=5e-4) or latest is published
    assert popup.locator("svg.chart").count() == 1
    page.screenshot(path=str(artifacts / "web-map-popup.png"))
    # switch to Mongolian
    page.click("#lang-toggle")
    page.wait_for_selector("body[data-ready=yes]", timeout=30_000)
    assert page.locator("header h1").inner_text() == catalogue()["mn"]["app.title"]
    assert catalogue()["mn"]["layers.title"] in page.locator("#panel").inner_text()
    page.screenshot(path=str(artifacts / "web-map-mn.png"))
    del gpd
    page.close()


def test_herder_page_in_mongolian_and_light(server, browser, artifacts):
    ws, base = server
    page = browser.new_page(viewport={"width": 390, "height": 844}, is_mobile=True)
    sizes: dict[str, int] = {}

    def record(response):
        try:
            sizes[response.url] = len(response.body())
        except Exception:  # redirects and aborted requests have no body
            sizes[response.url] = 0

    page.on("response", record)
    page.goto(f"{base}/herder?parcel=P3")
    page.wait_for_selector("body[data-ready=yes]", timeout=30_000)
    page.wait_for_load_state("networkidle")
    feature = next(f for f in __import__("httpx").get(f"{base}/collections/parcels/items/P3").json()
                   ["properties"].items() if f[0] == "condition_class")
    word = page.locator("#class-word").inner_text()
    assert word == class_label(feature[1], "mn") if feature[1] else word == catalogue()["mn"]["herder.nodata"]
    assert any("/tiles/" in u and u.endswith(".webp") for u in sizes), sizes
    total = sum(sizes.values())
    assert total < 1.5 * 1024 * 1024, f"herder page weighs {total} bytes"
    page.screenshot(path=str(artifacts / "web-herder-mn.png"), full_page=True)
    page.click("#lang-toggle")
    page.wait_for_selector("body[data-ready=yes]", timeout=30_000)
    assert page.locator("header h1").inner_text() == catalogue()["en"]["herder.title"]
    page.screenshot(path=str(artifacts / "web-herder-en.png"), full_page=True)
    page.close()


def test_officer_map_on_a_phone_is_full_width_with_a_drawer(server, browser, artifacts):
    """At 390×844 CSS px the map fills the screen below the header; the panel is a drawer."""
    ws, base = server
    page = browser.new_page(viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True)
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(f"{base}/")
    page.wait_for_selector("body[data-ready=yes]", timeout=30_000)
    wait_js(page, "window.belcheerMap && window.belcheerMap.areTilesLoaded()", 30_000)
    page.wait_for_timeout(300)
    assert not errors, errors
    assert page.evaluate("document.documentElement.scrollWidth") <= 390  # nothing sticks out sideways
    box = page.locator("#map").bounding_box()
    assert box["x"] == 0 and box["width"] == 390, box
    assert box["height"] >= 0.75 * 844 and box["y"] + box["height"] <= 844 + 0.5, box
    canvas = page.locator("#map canvas").bounding_box()
    assert canvas["width"] == 390 and abs(canvas["height"] - box["height"]) < 1, canvas
    # closed drawer: off-screen and out of the way; the sign-in form has moved into it
    assert not page.locator("#panel").is_visible()
    assert page.locator("#panel #login").count() == 1
    page.screenshot(path=str(artifacts / "web-map-phone-mn.png"))
    shot = page.locator("#map").screenshot()
    img = np.asarray(Image.open(io.BytesIO(shot)).convert("RGB")).astype(int)
    drawn = np.abs(img - np.array([0xEE, 0xF0, 0xE6])).sum(axis=2) > 30
    assert drawn.mean() > 0.2, f"only {drawn.mean():.1%} of the phone map has tile pixels"
    # open the drawer: on screen, at most 88 % of the width, layers usable
    page.click("#panel-toggle")
    page.wait_for_timeout(400)  # the slide-in transition
    assert page.get_attribute("#panel-toggle", "aria-expanded") == "true"
    panel = page.locator("#panel").bounding_box()
    assert page.locator("#panel").is_visible()
    assert panel["x"] >= 390 - 340 - 0.5 and panel["x"] + panel["width"] <= 390 + 0.5, panel
    assert 300 <= panel["width"] <= 0.88 * 390 + 0.5 and panel["height"] == 844, panel
    assert catalogue()["mn"]["layers.title"] in page.locator("#panel").inner_text()
    ndvi = page.locator("#layers input[type=checkbox]").first
    was = ndvi.is_checked()
    ndvi.click()
    assert ndvi.is_checked() != was
    page.screenshot(path=str(artifacts / "web-map-phone-drawer-mn.png"))
    # signing in from the drawer: the role in Mongolian words, not "officer"
    page.fill("#panel #login input[name=username]", "officer")
    page.fill("#panel #login input[name=password]", PASSWORD)
    page.click("#panel #login button")
    wait_js(page, "document.getElementById('whoami').textContent.length > 0", 10_000)
    assert page.locator("#whoami").inner_text() == f"officer ({catalogue()['mn']['role.officer']})"
    # close with the drawer's own button; the map is whole again
    page.click("#panel-close")
    page.wait_for_timeout(400)
    assert not page.locator("#panel").is_visible()
    assert page.get_attribute("#panel-toggle", "aria-expanded") == "false"
    # the English header's longer words fit too
    page.goto(f"{base}/?lang=en")
    page.wait_for_selector("body[data-ready=yes]", timeout=30_000)
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    box = page.locator("#map").bounding_box()
    assert box["width"] == 390 and box["height"] >= 0.75 * 844, box
    page.screenshot(path=str(artifacts / "web-map-phone-en.png"))
    page.close()


#: every word a person can read or hear on the page: visible text, and the placeholders, titles,
#: labels and alt texts of visible elements (the browser's own widgets excepted)
READABLE_JS = """() => {
  const out = [document.title];
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  for (let n = walker.nextNode(); n; n = walker.nextNode()) {
    const p = n.parentElement;
    if (!p || ["SCRIPT", "STYLE", "TEMPLATE"].includes(p.tagName)) continue;
    if (p.tagName === "OPTION" ? p.closest("select").checkVisibility() : p.checkVisibility({ visibilityProperty: true })) out.push(n.data);
  }
  for (const e of document.querySelectorAll("[placeholder],[title],[aria-label],[alt]")) {
    if (!e.checkVisibility({ visibilityProperty: true }) && e.tagName !== "svg") continue;
    for (const a of ["placeholder", "title", "aria-label", "alt"]) if (e.getAttribute(a)) out.push(e.getAttribute(a));
  }
  return out.join("\\n");
}"""


def test_mongolian_pages_have_no_english(server, browser, artifacts):
    """The officers' map (with a parcel's popup and the legend), the herders' page and the parcel
    table in Mongolian: no Latin word but index names, formats, classes' numerals and data."""
    from test_messages_mn import english_words

    ws, base = server
    data_words = {p[0] for p in PARCELS}  # parcel ids, shown beside names on the herders' page
    page = browser.new_page(viewport={"width": 1200, "height": 800})
    page.goto(f"{base}/")
    page.wait_for_selector("body[data-ready=yes]", timeout=30_000)
    wait_js(page, "window.belcheerMap && window.belcheerMap.areTilesLoaded()", 30_000)
    page.check("#layers input >> nth=0")  # every legend shown: condition's classes and units too
    page.wait_for_timeout(500)
    from test_api_helpers import parcel_geoms

    centre = parcel_geoms().to_crs(4326).set_index("parcel_id").geometry.loc["P2"].centroid
    xy = page.evaluate(f"(() => {{ const p = window.belcheerMap.project([{centre.x}, {centre.y}]); return [p.x, p.y]; }})()")
    box = page.locator("#map").bounding_box()
    page.mouse.click(box["x"] + xy[0], box["y"] + xy[1])
    page.locator(".maplibregl-popup .popup").wait_for(timeout=10_000)
    text = page.evaluate(READABLE_JS)
    assert catalogue()["mn"]["units.recovery class 1-5"] in text  # the condition legend's units
    assert catalogue()["mn"]["mapctl.NavigationControl.ZoomIn"] in text
    assert "NDVI" in text and catalogue()["mn"]["class.3"] in text
    assert not english_words(text, data_words), english_words(text, data_words)
    page.screenshot(path=str(artifacts / "web-map-mn-popup.png"))
    page.goto(f"{base}/herder?parcel=P2")
    page.wait_for_selector("body[data-ready=yes]", timeout=30_000)
    text = page.evaluate(READABLE_JS)
    assert catalogue()["mn"]["herder.title"] in text
    assert not english_words(text, data_words), english_words(text, data_words)
    page.goto(f"{base}/collections/parcels/items?f=html&lang=mn&limit=2")
    text = page.evaluate(READABLE_JS)
    assert catalogue()["mn"]["parcel.id"] in text and catalogue()["mn"]["items.next"] in text
    assert not english_words(text, data_words), english_words(text, data_words)
    page.close()


def test_parcel_card_shows_bare_ground_and_why_it_lowered_the_class(server, browser, artifacts):
    """P1's NDVI alone grades it class I, but 45 % of its ground is bare: the card shows the
    bare-ground share, the lowered class, and a note naming the class NDVI alone gave — in
    English and in Mongolian."""
    import httpx
    from test_api_helpers import parcel_geoms

    ws, base = server
    props = httpx.get(f"{base}/collections/parcels/items/P1").json()["properties"]
    assert props["condition_basis"] == "bare_cover" and props["bare_cover"] == pytest.approx(0.45)
    lowered, alone = props["condition_class"], props["condition_class_index"]
    assert lowered > alone >= 1
    centre = parcel_geoms().to_crs(4326).set_index("parcel_id").geometry.loc["P1"].centroid
    for lang in ("en", "mn"):
        page = browser.new_page(viewport={"width": 1200, "height": 800})
        page.goto(f"{base}/?lang={lang}")
        page.wait_for_selector("body[data-ready=yes]", timeout=30_000)
        wait_js(page, "window.belcheerMap && window.belcheerMap.areTilesLoaded()")
        xy = page.evaluate(f"(() => {{ const p = window.belcheerMap.project([{centre.x}, {centre.y}]); "
                           "return [p.x, p.y]; })()")
        box = page.locator("#map").bounding_box()
        page.mouse.click(box["x"] + xy[0], box["y"] + xy[1])
        popup = page.locator(".maplibregl-popup .popup")
        popup.wait_for(timeout=10_000)
        assert popup.locator(".bare-cover").inner_text() == "45 %"
        assert class_label(lowered, lang) in popup.locator(".condition").inner_text()
        note = catalogue()[lang]["parcel.bare_lowered"].format(cls=class_label(alone, lang))
        assert popup.locator(".condition-note").inner_text() == note
        page.screenshot(path=str(artifacts / f"web-map-bare-{lang}.png"))
        page.close()
