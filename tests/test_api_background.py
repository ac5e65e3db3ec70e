"""The notebook map server: belcheer's own app served from a thread on a free loopback port."""

from __future__ import annotations

import httpx

from belcheer.api import serve_in_background


def test_serve_in_background_serves_the_workspace_once(workspace):
    url = serve_in_background(workspace.root)
    assert url.startswith("http://127.0.0.1:")
    assert serve_in_background(workspace.root) == url  # a second call reuses the server
    resp = httpx.get(f"{url}/surveys", timeout=10)
    assert resp.status_code == 200
    assert resp.json() == [] or resp.json().get("surveys", []) == []
    page = httpx.get(f"{url}/", timeout=10)
    assert page.status_code == 200 and "maplibre" in page.text.lower()
