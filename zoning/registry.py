"""Registered livestock per soum from Mongolia's National Statistics Office (NSO), read at run
time from a folder the user points to (``BELCHEER_NSO_DATA``, ``--nso DIR``): never copied.

The folder holds the NSO soum tables as published through WFP PRISM:
``NSO_Livestock_Count_Admin2.json`` (``DataList`` rows: ``CODE`` = 5-digit NSO soum code,
``SCR_MN`` / ``SCR_ENG`` soum name, ``Period`` year, ``DTVAL_CO`` total heads) and
``aimag_nso_mn.geojson`` (aimags with ``NSO_CODE``, the first three digits of their soums'
codes, and Cyrillic ``ADM1_MN``). A soum is found by its NSO code, or by name — Cyrillic or
English — within its aimag (soum names repeat: there are three Баянгол).

The soum table has total heads only, no species split, so sheep units are an *estimate*
(heads × the SU per head of the national herd mix, ``capacity_defaults.json``), always
reported as such.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd

from belcheer.errors import InputError, NotFoundError

LIVESTOCK_FILE = "NSO_Livestock_Count_Admin2.json"
AIMAG_FILE = "aimag_nso_mn.geojson"
#: What the data is, for the report's list of sources.
SOURCE = ("National Statistics Office of Mongolia, livestock by soum (total heads), via WFP PRISM "
          "(NSO_Livestock_Count_Admin2.json)")


def _key(name: Any) -> str:
    return " ".join(str(name or "").replace("ё", "е").replace("Ё", "Е").lower().replace("-", " ").split())


def read_livestock(folder: str | Path) -> pd.DataFrame:
    """The NSO soum livestock table: ``nso_code`` (str), ``soum_mn``, ``soum_en``,
    ``aimag_code`` (str, 3 digits), ``aimag_mn``, ``aimag_en``, ``year`` and ``heads``."""
    folder = Path(folder)
    path = folder / LIVESTOCK_FILE
    if not path.is_file():
        raise NotFoundError(f"no NSO livestock table {LIVESTOCK_FILE} in {folder}; point "
                            "BELCHEER_NSO_DATA (or --nso) at the folder holding the NSO soum tables")
    try:
        rows = json.loads(path.read_text(encoding="utf-8"))["DataList"]
    except (ValueError, KeyError, TypeError) as exc:
        raise InputError(f"{path} is not an NSO data table (a JSON object with a DataList): {exc}") from exc
    table = pd.DataFrame([{"nso_code": str(r["CODE"]), "soum_mn": r.get("SCR_MN"), "soum_en": r.get("SCR_ENG"),
                           "year": int(r["Period"]), "heads": float(r["DTVAL_CO"])}
                          for r in rows if str(r.get("CODE1", 1)) in ("1", "")])
    table["aimag_code"] = table["nso_code"].str[:3]
    aimags = folder / AIMAG_FILE
    if aimags.is_file():
        import pyogrio

        a = pyogrio.read_dataframe(aimags, read_geometry=False, columns=["NSO_CODE", "ADM1_MN", "ADM1_EN"])
        names = a.assign(NSO_CODE=a["NSO_CODE"].astype(str)).set_index("NSO_CODE")
        table["aimag_mn"] = table["aimag_code"].map(names["ADM1_MN"])
        table["aimag_en"] = table["aimag_code"].map(names["ADM1_EN"])
    else:
        table["aimag_mn"] = table["aimag_en"] = None
    # the latest year of each soum (the table may hold several)
    return table.sort_values("year").groupby("nso_code", as_index=False).last()


def find_soum(livestock: pd.DataFrame, *, code: Any = None, soum: Any = None,
              aimag: Any = None) -> pd.Series | None:
    """The soum's row by NSO code, else by name (Cyrillic or English) within ``aimag``
    (Cyrillic or English name or NSO code); None when not found or the name is ambiguous."""
    if code is not None and str(code).strip() not in ("", "nan", "None"):
        hit = livestock[livestock["nso_code"] == str(code).strip().split(".")[0]]
        if len(hit) == 1:
            return hit.iloc[0]
    if soum is None or not str(soum).strip():
        return None
    k = _key(soum)
    hit = livestock[(livestock["soum_mn"].map(_key) == k) | (livestock["soum_en"].map(_key) == k)]
    if aimag is not None and str(aimag).strip() and len(hit) > 1:
        a = _key(aimag)
        hit = hit[(hit["aimag_mn"].map(_key) == a) | (hit["aimag_en"].map(_key) == a) | (hit["aimag_code"] == a)]
    return hit.iloc[0] if len(hit) == 1 else None


def livestock_or_none(folder: str | Path | None) -> pd.DataFrame | None:
    """:func:`read_livestock` of a configured folder, None when none is configured."""
    return None if folder is None or str(folder) == "" else read_livestock(folder)
