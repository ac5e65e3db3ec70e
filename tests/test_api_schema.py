"""Schemathesis against the OpenAPI schema: generated GET requests (and a few writes) never 500.

The operations are driven from one test (schemathesis' own pytest plugin does not load under this
pytest), each with a small, derandomised Hypothesis budget to keep the suite fast."""

from __future__ import annotations

import schemathesis
from hypothesis import HealthCheck, given, settings
from test_api_helpers import build_workspace

from belcheer.api import create_app

#: besides every GET: sign-in and adding parcels take bodies worth fuzzing
WRITES = {"/token", "/collections/parcels/items"}
SKIP = {"/jobs/{job_id}/events"}  # a stream that waits for a job to end


def test_no_server_errors(tmp_path):
    _, cfg = build_workspace(tmp_path / "ws")
    app = create_app(cfg)
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    checked = []
    for result in schema.get_all_operations():
        op = result.ok()
        if op.path in SKIP or not (op.method.upper() == "GET" or op.path in WRITES):
            continue

        @given(case=op.as_strategy())
        @settings(max_examples=5, deadline=None, derandomize=True, database=None,
                  suppress_health_check=list(HealthCheck))
        def run(case):
            response = case.call()
            assert response.status_code < 500, (case.method, case.formatted_path, response.text[:400])

        run()
        checked.append(f"{op.method.upper()} {op.path}")
    assert len(checked) >= 25, checked
