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
    return _fill(text, values)


def class_label(value: int | None, lang: str | None = None) -> str:
    """Words for a pasture recovery class 1…5 (I–V)."""
    if value is None or not 1 <= int(value) <= 5:
        return t("class.none", lang)
    return t(f"class.{int(value)}", lang)


class _Blank(dict):
    """Formatting values where a missing field stays as ``{field}`` instead of raising."""

    def __missing__(self, key: str) -> str:
        return "{" + key + "}"


def _fill(text: str, values: dict[str, Any]) -> str:
    return text.format_map(_Blank(values)) if values else text


def role_label(role: str, lang: str | None = None) -> str:
    """A user role (``public``, ``herder``, ``officer``, ``admin``) in words."""
    return t(f"role.{role}", lang)


def units_label(units: str | None, lang: str | None = None) -> str | None:
    """A product's units in words (``recovery class 1-5`` → ``сэргэх анги 1–5``); units without a
    catalogue entry (index differences such as ``Δndvi``) are returned as they are."""
    if units is None:
        return None
    return catalogue()[lang_or_default(lang)].get(f"units.{units}", units)


def error_code(exc: BaseException) -> str:
    """The catalogue key of an error: its own ``code`` when the catalogue has it, else that of its
    nearest error class (``error.CRSError`` …), else ``error.internal`` (a bug, not the user's)."""
    known = catalogue()["mn"]
    code = getattr(exc, "code", None)
    if code and code in known:
        return code
    for cls in type(exc).__mro__:
        if f"error.{cls.__name__}" in known:
            return f"error.{cls.__name__}"
    return "error.internal"


def error_text(code: str, lang: str | None = None, detail: str | None = None,
               params: dict[str, Any] | None = None) -> str:
    """An error as people read it in ``lang``. A code of its own (``error.stats.no_overlap``) has
    its text with ``params`` filled in; a class's code (``error.CRSError``) stands for the English
    ``detail`` in Mongolian, while English readers get that detail itself, which says more."""
    lang = lang_or_default(lang)
    own = code.count(".") > 1
    if not own and lang == "en" and detail:
        return detail
    # roles are words of the catalogue too ("officer" → "газрын даамал")
    values = {k: role_label(str(v), lang) if k.endswith("role") and f"role.{v}" in catalogue()["en"] else v
              for k, v in (params or {}).items()}
    return _fill(catalogue()[lang].get(code) or catalogue()["en"].get(code) or code, values)


def error_texts(exc: BaseException) -> dict[str, Any]:
    """``{"code", "params", "messages": {lang: text}}`` for an error (API bodies and job rows)."""
    code = error_code(exc)
    params = {k: v for k, v in (getattr(exc, "params", None) or {}).items()
              if isinstance(v, str | int | float | bool) or v is None}
    detail = str(exc) if code != "error.internal" else None
    return {"code": code, "params": params,
            "messages": {lang: error_text(code, lang, detail, params) for lang in LANGS}}


def negotiate(lang: str | None, accept_language: str | None) -> str:
    """The language of a response: ``?lang=`` if given, else the first of ``mn``/``en`` in the
    Accept-Language header, else Mongolian."""
    if lang in LANGS:
        return lang
    for part in (accept_language or "").split(","):
        tag = part.split(";")[0].strip().lower()[:2]
        if tag in LANGS:
            return tag
    return DEFAULT_LANG
