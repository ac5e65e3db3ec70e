"""The soum report to print: an A4 PDF for a soum or bag meeting, Mongolian first.

Page 1 (portrait): title, survey date, a condition map with parcel names (grazing parcels in
their recovery-class colours, crop fields hatched, the condition raster of the flight on top)
and the soum roll-up (:func:`belcheer.zoning.rollup` — the same numbers the CLI and the web
print). Then (landscape) a table per parcel: area, surveyed share, condition class or crop
uniformity, cover (when the report has ``green_cover``, ``dry_cover``, ``bare_cover``), capacity against the registered
herd, change since the previous survey. Last, the method, the date and the data sources.

Drawn with matplotlib's PdfPages; text is DejaVu Sans (it has Cyrillic) embedded as TrueType
(``pdf.fonttype`` 42), so the PDF's text layer is searchable and copyable. The Mongolian
report uses no English words: only index names (NDVI) and identifiers (parcel codes, the
survey's name) are in Latin letters.
"""

from __future__ import annotations

import datetime as _dt
import io
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

import geopandas as gpd
import numpy as np
import pandas as pd

from belcheer.errors import InputError, NotFoundError
from belcheer.zoning.numbers import quantity, share

if TYPE_CHECKING:  # pragma: no cover
    from belcheer.workspace import Workspace

A4_PORTRAIT = (8.27, 11.69)   # inches
A4_LANDSCAPE = (11.69, 8.27)
CLASS_COLORS = {1: "#1a9850", 2: "#91cf60", 3: "#fee08b", 4: "#fc8d59", 5: "#d73027"}
ROWS_PER_PAGE = 26

#: Every word the report prints, Mongolian and English.
TEXT: dict[str, dict[str, str]] = {
    "mn": {
        "title": "Бэлчээрийн төлөв, даацын тайлан",
        "soum": "{soum} сум", "aimag": "{aimag} аймаг", "all_soums": "Бүх сум",
        "survey": "Нислэг: {survey}, {date}", "printed": "Хэвлэсэн огноо: {date}",
        "map": "Бэлчээрийн төлөв (сэргэх анги) ба талбайн нэр",
        "crop_legend": "Тариалангийн талбай", "no_class": "Үнэлгээ алга",
        "flight": "Нислэгийн зураглал",
        "rollup": "Сумын нэгтгэл",
        "pasture": "Бэлчээр", "cropland": "Тариалан",
        "r_parcels": "Талбайн тоо", "r_area": "Талбай, га", "r_surveyed": "Зураглагдсан, га",
        "r_ndvi": "NDVI дундаж", "r_uniformity": "Жигд байдал",
        "r_classes": "Анги тус бүрийн талбай, га",
        "r_capacity": "Даац (бүх талбай), хонин толгой", "r_ha_su": "1 хонин толгойд ногдох талбай, га",
        "r_registered": "Талбайн ашиглагчдын бүртгэлтэй мал, хонин толгой",
        "r_balance": "Даацын зөрүү, хонин толгой (хасах = даацаас хэтэрсэн)",
        "r_nso": "Сумын бүртгэлтэй мал ({year}), толгой", "r_nso_su": "Үүнийг хонин толгойд шилжүүлсэн (ойролцоо)",
        "r_nso_share": "Зураглагдсан бэлчээрийн даац / сумын малын хонин толгой",
        "r_nso_missing": "Сумын малын тоо олдсонгүй",
        "parcels": "Талбай тус бүрээр",
        "c_name": "Талбай", "c_use": "Ашиглалт", "c_area": "Талбай,\nга", "c_surveyed": "Зураг-\nлагдсан",
        "c_class": "Төлөв", "c_cover": "Бүрхэц: ногоон /\nхуурай / ил хөрс", "c_capacity": "Даац,\nх.т.",
        "c_ha_su": "га /\nх.т.", "c_registered": "Бүртгэлтэй\nмал, х.т.", "c_balance": "Зөрүү,\nх.т.",
        "c_change": "Өмнөх нислэгээс\nхойш", "bare_lowered": "ил хөрсөөр", "notes": "Тайлбар", "su_abbr": "х.т. = хонин толгой",
        "uniformity": "жигд {v}", "over": "хэтэрсэн", "page": "{n}-р хуудас",
        "use.pasture": "бэлчээр", "use.hayfield": "хадлан", "use.otor": "отор", "use.cropland": "тариалан",
        "use.other": "бусад",
        "method": "Арга зүй",
        "method_text": (
            "Дроны олон сувгийн зургаас ортомозайк хийж, ойлтыг самбар ба нарны мэдрэгчээр "
            "тохируулан NDVI индексийг тооцов. Талбай тус бүрийн статистикийг пикселийн "
            "бүрхэлтээр жигнэн тооцсон. Бэлчээр, хадлан, отрын талбайд л сэргэх анги (I–V), "
            "биомасс, даацыг тогтоов; тариалангийн талбайд индексийн дундаж, жигд байдал "
            "(1 − стандарт хазайлт / дундаж) ба өөрчлөлтийг гаргав: ургац хураалтыг доройтол "
            "гэж үзэхгүй.",
            "Сэргэх ангийн босго нь экологийн бүс тус бүрийн хүснэгтээс (Дэнсамбуу нар 2015, "
            "2018, Монгол орны бэлчээрийн төлөв байдлын үндэсний тайлан) авсан урьдчилсан утга.",
            "Бүрхэц тооцсон талбайд ил хөрсний эзлэх хувийг мөн экологийн бүсийн босгоор "
            "ангилж, NDVI-ийн анги ба ил хөрсний ангийн аль мууг нь талбайн анги болгов: ил "
            "хөрс ангийг зөвхөн муутгана.",
            "Даац: ашиглах биомасс (биомасс × ангийн ашиглалтын хувь) ÷ (нэг хонин толгойн "
            "өдрийн идэш × бэлчээрлэх хоног); талбайн зураглагдсан хэсгийн 1 га-гийн даацыг бүх "
            "талбайд үржүүлсэн. Зураглагдсан хэсэг {min_share}-аас бага бол бүх талбайд "
            "тооцоогүй.",
            "Хонин толгойд шилжүүлэх коэффициент: тэмээ 5, адуу 7, үхэр 6, хонь 1, ямаа 0.9. "
            "Сумын малын тоо нь нийт толгойгоор байдаг тул улсын сүргийн бүтцээр хонин "
            "толгойд ойролцоогоор шилжүүлэв ({su_head} хонин толгой / толгой).",
            "Сумын нэгтгэлийн дундаж утгыг талбай тус бүрийн зураглагдсан талбайгаар жигнэв.",
        ),
        "sources": "Мэдээллийн эх сурвалж",
        "src_survey": "Дроны нислэг {survey} ({date})",
        "src_parcels": "Талбайн давхарга, хувилбар {version}",
        "src_nso": "Үндэсний статистикийн хороо: сумын малын тоо, {year} он",
        "src_thresholds": "Сэргэх ангийн босго ба даацын коэффициентийн хүснэгт (программын дотор)",
        "src_software": "Бэлчээр — нээлттэй программ хангамж",
        "none": "—",
    },
    "en": {
        "title": "Pasture condition and carrying capacity report",
        "soum": "{soum} soum", "aimag": "{aimag} aimag", "all_soums": "All soums",
        "survey": "Survey: {survey}, {date}", "printed": "Printed: {date}",
        "map": "Pasture condition (recovery class) and parcel names",
        "crop_legend": "Crop field", "no_class": "Not assessed",
        "flight": "Flight coverage",
        "rollup": "Soum roll-up",
        "pasture": "Pasture", "cropland": "Cropland",
        "r_parcels": "Parcels", "r_area": "Area, ha", "r_surveyed": "Surveyed, ha",
        "r_ndvi": "NDVI mean", "r_uniformity": "Uniformity",
        "r_classes": "Area per class, ha",
        "r_capacity": "Capacity (whole parcels), sheep units", "r_ha_su": "Hectares per sheep unit",
        "r_registered": "Herds registered to the parcels' users, sheep units",
        "r_balance": "Stocking balance, sheep units (negative = overstocked)",
        "r_nso": "Soum's registered livestock ({year}), head", "r_nso_su": "The same in sheep units (estimate)",
        "r_nso_share": "Capacity of the surveyed pasture / soum herd in sheep units",
        "r_nso_missing": "Soum livestock not found",
        "parcels": "Per parcel",
        "c_name": "Parcel", "c_use": "Land use", "c_area": "Area,\nha", "c_surveyed": "Surveyed",
        "c_class": "Condition", "c_cover": "Cover: green /\ndry / bare", "c_capacity": "Capacity,\nSU",
        "c_ha_su": "ha /\nSU", "c_registered": "Registered\nherd, SU", "c_balance": "Balance,\nSU",
        "c_change": "Since previous\nsurvey", "bare_lowered": "by bare ground", "notes": "Notes", "su_abbr": "SU = sheep unit",
        "uniformity": "uniformity {v}", "over": "overstocked", "page": "page {n}",
        "use.pasture": "pasture", "use.hayfield": "hayfield", "use.otor": "otor", "use.cropland": "cropland",
        "use.other": "other",
        "method": "Method",
        "method_text": (
            "An orthomosaic was built from the drone's multispectral frames, reflectance calibrated "
            "with the panel and the sunlight sensor, and NDVI computed. Parcel statistics weight "
            "each pixel by the share of it inside the parcel. Recovery classes (I–V), biomass and "
            "carrying capacity are given for pasture, hayfield and otor parcels only; crop fields "
            "get the index mean, uniformity (1 − standard deviation / mean) and change: a harvest "
            "is not degradation.",
            "Recovery-class thresholds per ecological zone are provisional values from the "
            "project's table (Densambuu et al. 2015, 2018, National report on the rangeland "
            "health of Mongolia).",
            "Where fractional cover was computed, the parcel's bare-ground share is also graded "
            "with per-zone thresholds and the parcel gets the worse of its NDVI class and its "
            "bare-ground class: bare ground can only lower a class.",
            "Capacity: usable biomass (biomass × utilisation share of the class) ÷ (daily intake of "
            "one sheep unit × grazing days); SU per hectare of the surveyed part times the whole "
            "parcel's area. Parcels surveyed less than {min_share} are not extrapolated.",
            "Sheep-unit coefficients: camel 5, horse 7, cattle 6, sheep 1, goat 0.9. The soum's "
            "livestock is known as total heads only, so it is turned into sheep units with the "
            "national herd mix ({su_head} sheep units per head): an estimate.",
            "Roll-up means are weighted by each parcel's surveyed area.",
        ),
        "sources": "Data sources",
        "src_survey": "Drone survey {survey} ({date})",
        "src_parcels": "Parcel layer, version {version}",
        "src_nso": "National Statistics Office of Mongolia: livestock by soum, {year} "
                   "(NSO_Livestock_Count_Admin2.json, via WFP PRISM)",
        "src_thresholds": "Recovery-class thresholds and capacity coefficients (condition_thresholds.csv, "
                          "capacity_defaults.json)",
        "src_software": "belcheer — open-source software",
        "none": "—",
    },
}


def _t(lang: str, key: str, **values: Any) -> str:
    text = TEXT[lang][key]
    return text.format(**values) if values else text


def _class_word(code: int, lang: str) -> str:
    from belcheer.zoning.condition import ROMAN

    return f"{ROMAN[code]} {'анги' if lang == 'mn' else 'class'}" if code in ROMAN else ""


def _cover_cell(row: pd.Series, lang: str) -> str:
    vals = [row.get(f"{k}_cover") for k in ("green", "dry", "bare")]
    if all(v is None or v != v for v in vals):
        return TEXT[lang]["none"]
    return " / ".join(share(v) for v in vals)


def _change_cell(row: pd.Series, index: str, lang: str) -> str:
    from belcheer.zoning.change import CHANGE_KINDS

    d = row.get(f"{index}_delta")
    kind = row.get("change_kind") or "no_data"
    if d is None or d != d:
        return TEXT[lang]["none"]
    word = CHANGE_KINDS.get(kind, ("", ""))[0 if lang == "mn" else 1]
    return f"Δ{index.upper()} {d:+.2f} {word}".strip()


def _parcel_rows(report: pd.DataFrame, index: str, lang: str) -> list[list[str]]:
    rows = []
    for _, r in report.iterrows():
        if r.get("use_group") == "cropland":
            u = r.get("crop_uniformity")
            cls = _t(lang, "uniformity", v=quantity(u)) if u == u and u is not None else TEXT[lang]["none"]
        else:
            cls = _class_word(int(r.get("condition_class") or 0), lang) or TEXT[lang]["none"]
            if r.get("condition_basis") == "bare_cover":  # the reader sees that bare ground decided
                cls += f" ({_t(lang, 'bare_lowered')})"
        bal = r.get("balance_su")
        bal_txt = quantity(bal) + (f" {_t(lang, 'over')}" if bal == bal and bal is not None and bal < 0 else "")
        name = str(r.get("name") or r.get("parcel_id"))
        rows.append([name[:36], TEXT[lang].get(f"use.{r.get('land_use')}", str(r.get("land_use"))),
                     quantity(r.get("area_ha")), share(r.get("surveyed_share")), quantity(r.get(f"{index}_mean")),
                     cls, _cover_cell(r, lang), quantity(r.get("capacity_su")), quantity(r.get("ha_per_su")),
                     quantity(r.get("registered_su")), bal_txt, _change_cell(r, index, lang)])
    return rows


def _rollup_rows(unit: pd.Series, index: str, lang: str) -> list[list[str]]:
    tt = TEXT[lang]
    rows = [[tt["pasture"], ""],
            [tt["r_parcels"], str(int(unit.get("pasture_parcels", 0)))],
            [tt["r_area"], quantity(unit.get("pasture_area_ha"))],
            [tt["r_surveyed"], quantity(unit.get("pasture_surveyed_ha"))],
            [tt["r_ndvi"].replace("NDVI", index.upper()), quantity(unit.get(f"pasture_{index}_mean"))],
            *[[f"{tt['r_classes']}: {_class_word(k, lang)}", quantity(unit.get(f"pasture_class_{k}_ha"))]
              for k in range(1, 6)],
            [tt["r_capacity"], quantity(unit.get("capacity_su"))]]
    cap, area = unit.get("capacity_su"), unit.get("pasture_area_ha")
    rows.append([tt["r_ha_su"], quantity(area / cap) if cap and cap == cap and cap > 0 else tt["none"]])
    rows += [[tt["r_registered"], quantity(unit.get("registered_su"))],
             [tt["r_balance"], quantity(unit.get("balance_su"))]]
    if "nso_heads" in unit.index:
        if unit.get("nso_heads") == unit.get("nso_heads"):
            rows += [[_t(lang, "r_nso", year=int(unit["nso_year"])), quantity(unit["nso_heads"])],
                     [tt["r_nso_su"], quantity(unit.get("nso_su_est"))],
                     [tt["r_nso_share"], share(unit.get("capacity_share_of_nso"))]]
        else:
            rows.append([tt["r_nso_missing"], tt["none"]])
    rows += [[tt["cropland"], ""],
             [tt["r_parcels"], str(int(unit.get("cropland_parcels", 0)))],
             [tt["r_area"], quantity(unit.get("cropland_area_ha"))],
             [tt["r_ndvi"].replace("NDVI", index.upper()), quantity(unit.get(f"cropland_{index}_mean"))],
             [tt["r_uniformity"], quantity(unit.get("crop_uniformity"))]]
    return rows


def _draw_map(ax: Any, report: gpd.GeoDataFrame, raster: Path | None, lang: str) -> None:
    import matplotlib.patheffects as pe
    import rasterio
    from matplotlib.colors import ListedColormap
    from matplotlib.patches import Patch

    crs = None
    if raster is not None:
        with rasterio.open(raster) as src:
            crs = src.crs.to_wkt()
    parcels = report.to_crs(crs) if crs else report.to_crs(report.estimate_utm_crs())
    for _, r in parcels.iterrows():
        grazed = r.get("use_group") == "pasture"
        cls = int(r.get("condition_class") or 0)
        if grazed:
            gpd.GeoSeries([r.geometry]).plot(ax=ax, facecolor=CLASS_COLORS.get(cls, "#dddddd"), alpha=0.45,
                                              edgecolor="#333333", linewidth=0.6)
        else:
            gpd.GeoSeries([r.geometry]).plot(ax=ax, facecolor="#f4f0e0", hatch="///", edgecolor="#8a7a4a",
                                              linewidth=0.6)
    halo = [pe.withStroke(linewidth=2, foreground="white")]
    for _, r in parcels.iterrows():
        p = r.geometry.representative_point()
        ax.annotate(str(r.get("name") or r.get("parcel_id"))[:36], (p.x, p.y), ha="center", va="center",
                    fontsize=6.5, zorder=5, path_effects=halo)
    if raster is not None:
        from shapely.geometry import box

        with rasterio.open(raster) as src:
            scale = max(1.0, max(src.width, src.height) / 1200)
            data = src.read(1, out_shape=(max(1, int(src.height / scale)), max(1, int(src.width / scale))))
            b = src.bounds
        cmap = ListedColormap(["#00000000", *[CLASS_COLORS[k] for k in range(1, 6)]])
        img = np.where(data > 5, 0, data)
        extent = (b.left, b.right, b.bottom, b.top)
        ax.imshow(img, cmap=cmap, vmin=-0.5, vmax=5.5, interpolation="nearest", extent=extent, zorder=3)
        seen = box(*b)
        gpd.GeoSeries([seen]).boundary.plot(ax=ax, color="black", linewidth=0.8, linestyle="--", zorder=4)
        x0, x1 = ax.get_xlim()
        if (b.right - b.left) < 0.25 * (x1 - x0):
            # parcels reach far beyond the flight: an inset shows what the flight saw
            ins = ax.inset_axes((0.64, 0.58, 0.35, 0.40))
            ins.imshow(img, cmap=cmap, vmin=-0.5, vmax=5.5, interpolation="nearest", extent=extent)
            parcels.boundary.plot(ax=ins, color="#333333", linewidth=0.6)
            for _, r in parcels.iterrows():
                part = r.geometry.intersection(seen)
                if not part.is_empty and part.area > 0.02 * seen.area:
                    p = part.representative_point()
                    ins.annotate(str(r.get("name") or r.get("parcel_id"))[:20], (p.x, p.y), ha="center",
                                 va="center", fontsize=5, path_effects=halo)
            ins.set_xlim(b.left, b.right)
            ins.set_ylim(b.bottom, b.top)
            ins.set_xticks([])
            ins.set_yticks([])
            ins.set_xlabel("")  # geopandas labels axes with the CRS's English axis names
            ins.set_ylabel("")
            ins.set_title(_t(lang, "flight"), fontsize=6.5)
    handles = [Patch(facecolor=CLASS_COLORS[k], label=_class_word(k, lang)) for k in range(1, 6)]
    handles.append(Patch(facecolor="#f4f0e0", hatch="///", edgecolor="#8a7a4a", label=_t(lang, "crop_legend")))
    ax.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, -0.01), ncol=6, fontsize=6.5,
              frameon=False)
    ax.set_aspect("equal")
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_xlabel("")
    ax.set_ylabel("")
    x0, x1 = ax.get_xlim()
    # a scale bar: metres in the map's UTM CRS
    length = 10 ** np.floor(np.log10(max((x1 - x0) / 4, 1.0)))
    y0, y1 = ax.get_ylim()
    xb, yb = x1 - (x1 - x0) * 0.05 - length, y0 + (y1 - y0) * 0.04
    ax.plot([xb, xb + length], [yb, yb], color="black", linewidth=2.5, zorder=6)
    unit = "м" if lang == "mn" else "m"
    label = f"{length / 1000:g} к{unit}" if length >= 1000 and lang == "mn" else (
        f"{length / 1000:g} k{unit}" if length >= 1000 else f"{length:g} {unit}")
    ax.text(xb + length / 2, yb + (y1 - y0) * 0.012, label, ha="center", va="bottom", fontsize=7, zorder=6)


def _table(ax: Any, rows: list[list[str]], header: Sequence[str] | None, widths: Sequence[float],
           fontsize: float, bold_rows: Sequence[int] = ()) -> None:
    ax.axis("off")
    table = ax.table(cellText=rows, colLabels=list(header) if header else None, colWidths=list(widths),
                     loc="upper center", cellLoc="left", colLoc="left")
    table.auto_set_font_size(False)
    table.set_fontsize(fontsize)
    table.scale(1.0, 1.25)
    first = 1 if header else 0
    for (r, _c), cell in table.get_celld().items():
        cell.set_linewidth(0.3)
        if header and r == 0:
            cell.set_facecolor("#e8eef4")
            cell.get_text().set_fontweight("bold")
            cell.set_height(cell.get_height() * 2)  # two-line column names
        elif r - first in bold_rows:
            cell.set_facecolor("#f2f2f2")
            cell.get_text().set_fontweight("bold")


def render_soum_report(report: gpd.GeoDataFrame, out: str | Path | BinaryIO, *, lang: str = "mn",
                       soum: str | None = None, livestock: pd.DataFrame | None = None,
                       raster: Path | None = None, survey: str | None = None, date: str | None = None,
                       parcel_version: int | None = None, index: str = "ndvi", params: Any = None,
                       printed: _dt.date | None = None) -> None:
    """Write the soum report of a parcel report (:func:`belcheer.zoning.parcel_report`, any CRS)
    to ``out`` (a path, written atomically, or a binary file object) as an A4 PDF in ``lang``
    (``mn`` or ``en``). ``soum`` keeps only that soum's parcels (by their ``soum`` attribute);
    ``livestock`` (NSO table) adds the soum's registered herd; ``raster`` is the condition
    product drawn on the map."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt
    from matplotlib.backends.backend_pdf import PdfPages

    from belcheer.zoning.capacity import CapacityParams, su_per_head
    from belcheer.zoning.rollup import rollup

    if lang not in TEXT:
        raise InputError(f"report language {lang!r} is not offered; use mn or en")
    if soum is not None:
        if "soum" not in report or not (report["soum"].astype(str) == soum).any():
            known = sorted(set(report["soum"].dropna().astype(str))) if "soum" in report else []
            raise NotFoundError(f"no parcels in soum {soum!r}; the parcels' soums are {', '.join(known) or 'none'}")
        report = report[report["soum"].astype(str) == soum]
    if len(report) == 0:
        raise NotFoundError("no parcels to report on; import a parcel layer first")
    p = params if isinstance(params, CapacityParams) else CapacityParams()
    group = "soum" if "soum" in report else None
    units = rollup(report, None, group, index=index, livestock=livestock, params=p) if group else None
    soums = [str(s) for s in units["soum"]] if units is not None else []
    aimags = sorted({str(a) for a in report.get("aimag", pd.Series(dtype=object)).dropna() if str(a)})
    printed = printed or _dt.date.today()
    tt = TEXT[lang]
    rc = {"pdf.fonttype": 42, "font.family": "DejaVu Sans", "axes.unicode_minus": True}
    buf = io.BytesIO()
    with matplotlib.rc_context(rc), PdfPages(buf, metadata={"Title": tt["title"], "Creator": "belcheer"}) as pdf:
        # page 1: title, map, roll-up
        fig = plt.figure(figsize=A4_PORTRAIT)
        head = _t(lang, "soum", soum=soums[0]) if len(soums) == 1 else tt["all_soums"]
        if len(aimags) == 1:
            head += ", " + _t(lang, "aimag", aimag=aimags[0])
        fig.text(0.06, 0.96, tt["title"], fontsize=15, fontweight="bold", va="top")
        fig.text(0.06, 0.935, head, fontsize=12, va="top")
        fig.text(0.06, 0.915, _t(lang, "survey", survey=survey or tt["none"], date=date or tt["none"]) + "     "
                 + _t(lang, "printed", date=printed.isoformat()), fontsize=8.5, va="top", color="#333333")
        ax = fig.add_axes((0.06, 0.47, 0.88, 0.42))
        ax.set_title(tt["map"], fontsize=9, loc="left")
        _draw_map(ax, report, raster, lang)
        for i, (_, unit) in enumerate(units.iterrows() if units is not None else []):
            if i > 0:  # more soums: one page each for their roll-ups
                pdf.savefig(fig)
                plt.close(fig)
                fig = plt.figure(figsize=A4_PORTRAIT)
            top = 0.44 if i == 0 else 0.92
            fig.text(0.06, top, f"{tt['rollup']}: {unit['soum']}", fontsize=10, fontweight="bold", va="top")
            tax = fig.add_axes((0.06, 0.03, 0.88, top - 0.05))
            rrows = _rollup_rows(unit, index, lang)
            _table(tax, rrows, None, (0.62, 0.38), 7.5,
                   bold_rows=[i for i, r in enumerate(rrows) if r[0] in (tt["pasture"], tt["cropland"])])
        pdf.savefig(fig)
        plt.close(fig)
        # the parcel table, landscape
        header = [tt[k] for k in ("c_name", "c_use", "c_area", "c_surveyed")] + [index.upper()] + [
            tt[k] for k in ("c_class", "c_cover", "c_capacity", "c_ha_su", "c_registered", "c_balance", "c_change")]
        widths = (0.17, 0.06, 0.05, 0.06, 0.04, 0.07, 0.11, 0.06, 0.05, 0.07, 0.09, 0.15)

        ordered = report.sort_values(["use_group", "name"], ascending=[False, True]) if "use_group" in report \
            else report
        rows = _parcel_rows(ordered, index, lang)
        notes = [f"{r.get('name') or r.get('parcel_id')}: {r.get(f'capacity_note_{lang}')}"
                 for _, r in ordered.iterrows()
                 if r.get("capacity_status") in ("below_min_share", "not_surveyed", "no_biomass")]
        for n, start in enumerate(range(0, len(rows), ROWS_PER_PAGE)):
            fig = plt.figure(figsize=A4_LANDSCAPE)
            fig.text(0.04, 0.95, tt["parcels"], fontsize=11, fontweight="bold", va="top")
            fig.text(0.96, 0.03, _t(lang, "page", n=n + 2), fontsize=7, ha="right")
            chunk = rows[start:start + ROWS_PER_PAGE]
            _table(fig.add_axes((0.04, 0.06, 0.92, 0.86)), chunk, header, widths, 6.5)
            if start + ROWS_PER_PAGE >= len(rows):
                foot = [tt["su_abbr"], *notes[:12]]
                fig.text(0.04, 0.9 - 0.031 * (len(chunk) + 2) - 0.02, f"{tt['notes']}:\n" + "\n".join(foot),
                         fontsize=6.5, va="top", linespacing=1.5)
            pdf.savefig(fig)
            plt.close(fig)
        # method and sources
        fig = plt.figure(figsize=A4_PORTRAIT)
        fig.text(0.06, 0.95, tt["method"], fontsize=12, fontweight="bold", va="top")
        import textwrap

        y = 0.92
        for para in tt["method_text"]:
            para = para.format(min_share=share(p.min_surveyed_share), su_head=quantity(su_per_head(p)))
            lines = textwrap.wrap(para, 100)
            fig.text(0.06, y, "\n".join(lines), fontsize=8.5, va="top", linespacing=1.4)
            y -= 0.0152 * len(lines) + 0.014
        y -= 0.02
        fig.text(0.06, y, tt["sources"], fontsize=12, fontweight="bold", va="top")
        y -= 0.035
        src = [_t(lang, "src_survey", survey=survey or tt["none"], date=date or tt["none"]),
               _t(lang, "src_parcels", version=parcel_version if parcel_version is not None else tt["none"])]
        if units is not None and "nso_year" in units and units["nso_year"].notna().any():
            src.append(_t(lang, "src_nso", year=int(units["nso_year"].dropna().iloc[0])))
        src += [tt["src_thresholds"], tt["src_software"]]
        for s in src:
            fig.text(0.08, y, "• " + s, fontsize=8.5, va="top")
            y -= 0.025
        pdf.savefig(fig)
        plt.close(fig)
    data = buf.getvalue()
    if isinstance(out, (str, Path)):
        from belcheer.fileio import atomic_path

        with atomic_path(Path(out)) as tmp:
            Path(tmp).write_bytes(data)
    else:
        out.write(data)


def write_soum_report(ws: Workspace, out: str | Path | BinaryIO, *, survey: str | None = None,
                      soum: str | None = None, lang: str = "mn", livestock: pd.DataFrame | None = None,
                      params: Any = None, index: str = "ndvi") -> None:
    """The soum report of a workspace's survey (the latest with statistics by default): the
    parcel report, the survey's condition raster (if made) and the NSO herd, as an A4 PDF."""
    from belcheer.zoning.report import parcel_report

    rep = parcel_report(ws, survey, index=index, params=params)
    render_workspace_report(ws, rep, out, soum=soum, lang=lang, livestock=livestock, index=index,
                            params=params)


def render_workspace_report(ws: Workspace, report: gpd.GeoDataFrame, out: str | Path | BinaryIO, *,
                            soum: str | None = None, lang: str = "mn",
                            livestock: pd.DataFrame | None = None, index: str = "ndvi",
                            params: Any = None) -> None:
    """:func:`render_soum_report` of a parcel report made in ``ws``, with its survey's condition
    raster read through the product store (a map without it when it was not made or its file
    is gone), the survey's date and the current parcel-layer version."""
    import contextlib

    name = str(report["survey"].iloc[0]) if "survey" in report and len(report) and report["survey"].iloc[0] \
        else None
    with contextlib.ExitStack() as stack:
        raster = None
        if name:
            try:
                raster = stack.enter_context(ws.product_file(ws.product(name, "condition")))
            except NotFoundError:
                raster = None
        pv = ws.catalog.current_parcel_version()
        render_soum_report(report, out, lang=lang, soum=soum, livestock=livestock, raster=raster, survey=name,
                           date=ws.catalog.survey(name).date if name else None,
                           parcel_version=pv.version if pv else None, index=index, params=params)
