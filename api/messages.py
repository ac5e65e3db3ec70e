"""The one message catalogue (Mongolian first, English second) used by pages, PNGs and JS."""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Any

LANGS: tuple[str, ...] = ("mn", "en")
DEFAULT_LANG = "mn"
_PATH = Path(__file__).with_name("messages.json")


@lru_cache(maxsize=1)
def catalogue() -> dict[str, dict[str, str]]:
    """All messages: ``{lang: {key: text}}``."""
    return json.loads(_PATH.read_text(encoding="utf-8"))


def lang_or_default(lang: str | None) -> str:
    return lang if lang in LANGS else DEFAULT_LANG


def t(key: str, lang: str | None = None, **values: Any) -> str:
    """The message ``key`` in ``lang`` (Mongolian by default), with ``{name}`` fields filled in."""
    msgs = catalogue()
    text = msgs[lang_or_default(lang)].get(key) or msgs["en"].get(key) or key
    return text.format(**values) if values else text


def class_label(value: int | None, lang: str | None = None) -> str:
    """Words for a pasture recovery class 1…5 (I–V)."""
    if value is None or not 1 <= int(value) <= 5:
        return t("class.none", lang)
    return t(f"class.{int(value)}", lang)
