"""Capacity on the herders' page and the map popup in headless Chromium (issue 15, item 2): the
herd typed as heads per species with the coefficients shown, sensible precision (0.1 SU is
"0.10", never "0"), ha per SU beside SU."""

from __future__ import annotations

import pytest
from test_api_helpers import SURVEY, build_workspace
from test_web_browser import ARGS, CHROMIUM, _free_port

from belcheer.zoning import parcel_report
from belcheer.zoning.numbers import quantity

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def small_capacity(tmp_path_factory):
    import threading
    import time

    import uvicorn

    from belcheer.api import create_app

    ws, settings = build_workspace(tmp_path_factory.mktemp("cap") / "ws")
    # a thin pasture: P1 (0.81 ha, class I steppe, summer) carries about 0.1 sheep units
    rows = [{"parcel_id": p, "mean": b, "count": 1000.0, "valid_fraction": 1.0}
            for p, b in (("P1", 33.3), ("P2", 400.0), ("P3", 300.0))]
    ws.catalog.put_stats(SURVEY, ws.catalog.survey(SURVEY).date, "biomass", rows, parcel_version=1)
    port = _free_port()
    srv = uvicorn.Server(uvicorn.Config(create_app(settings), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    for _ in range(200):
        if srv.started:
            break
        time.sleep(0.05)
    assert srv.started
    yield ws, f"http://127.0.0.1:{port}"
    srv.should_exit = True
    thread.join(10)


def test_herder_page_heads_per_species_and_precision(small_capacity) -> None:
    from playwright.sync_api import sync_playwright

    ws, base = small_capacity
    rep = parcel_report(ws, SURVEY).set_index("parcel_id")
    cap = rep.loc["P1", "capacity_su"]
    assert 0.09 < cap < 0.11
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        page = browser.new_page(viewport={"width": 390, "height": 844}, is_mobile=True)
        page.goto(f"{base}/herder?parcel=P1")
        page.wait_for_selector("body[data-ready=yes]", timeout=30_000)
        text = page.locator("#capacity").inner_text()
        assert text == f"Энэ бэлчээр {quantity(cap)} хонин толгой мал даана" and quantity(cap) != "0"
        assert quantity(rep.loc["P1", "ha_per_su"]) in page.locator("#capacity-detail").inner_text()
        # the registered heads per species fill the form; the coefficients are shown beside them
        for sp, coef in (("camel", "5"), ("horse", "7"), ("cattle", "6"), ("sheep", "1"), ("goat", "0.9")):
            assert page.locator(f"#herd-{sp}").input_value() == str(int(rep.loc["P1", sp]))
            assert f"1 толгой = {coef} хонин толгой" in page.locator(f"label:has(#herd-{sp})").inner_text()
        assert page.locator("#herd-total").inner_text() == f"Нийт {quantity(rep.loc['P1', 'registered_su'])} хонин толгой"
        for sp in ("horse", "cattle", "goat"):
            page.fill(f"#herd-{sp}", "0")
        page.fill("#herd-camel", "1")
        page.fill("#herd-sheep", "10")
        assert page.locator("#herd-total").inner_text() == "Нийт 15 хонин толгой"
        assert page.locator("#stocking").inner_text() == (
            f"Таны мал даацаас {quantity(15 - cap)} хонин толгойгоор хэтэрсэн байна")
        page.goto(f"{base}/herder?parcel=P1&lang=en")
        page.wait_for_selector("body[data-ready=yes]", timeout=30_000)
        assert page.locator("#capacity").inner_text() == f"This pasture carries {quantity(cap)} sheep units"
        assert "1 head = 0.9 sheep units" in page.locator("label:has(#herd-goat)").inner_text()
        browser.close()
