"""The README's API reference is generated from the code and must not drift from it."""

from __future__ import annotations

from belcheer import apidoc


def test_readme_api_reference_is_current():
    assert apidoc.main(["--check"]) == 0, "run `python -m belcheer.apidoc` and commit README.md"


def test_reference_lists_every_stage_and_the_facade():
    text = apidoc.reference()
    for needle in ("belcheer.ingest.scan(", "belcheer.orthomosaic.mosaic(", "belcheer.indices.compute(",
                   "belcheer.zoning.zonal_stats(", "belcheer.api.create_app(", "SurveyView.index("):
        assert needle in text
    assert "_env_prefix" not in text
