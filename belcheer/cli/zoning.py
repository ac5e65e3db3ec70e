"""Zoning commands: parcels import/list, stats, biomass calibrate, condition, report, change,
rollup, landcover and zones. They only call ``belcheer.zoning``'s public functions."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from belcheer.cli import _common
from belcheer.errors import InputError


def _split(value: str | None) -> list[str] | None:
    return [v.strip() for v in value.split(",") if v.strip()] if value else None


def _records(frame: Any) -> list[dict[str, Any]]:
    cols = [c for c in frame.columns if c != "geometry"]
    return json.loads(frame[cols].to_json(orient="records", force_ascii=False))


def _write_table(frame: Any, out: Path) -> None:
    """Write a (Geo)DataFrame by the file's suffix: .gpkg, .geojson, .csv, .zip (Shapefile)."""
    from belcheer.fileio import atomic_path

    suffix = out.suffix.lower()
    if suffix == ".csv":
        with atomic_path(out) as tmp:
            frame.drop(columns="geometry", errors="ignore").to_csv(tmp, index=False, encoding="utf-8")
    elif suffix in (".gpkg", ".geojson", ".fgb"):
        import pyogrio

        with atomic_path(out) as tmp:
            pyogrio.write_dataframe(frame, tmp, driver={".gpkg": "GPKG", ".geojson": "GeoJSON",
                                                        ".fgb": "FlatGeobuf"}[suffix])
    elif suffix == ".zip":
        from belcheer.zoning import export_prescription

        export_prescription(frame, out, layer=out.stem)
    else:
        raise InputError(f"cannot write {out.name}: use .gpkg, .geojson, .fgb, .csv or .zip (Shapefile)")


def register(app: typer.Typer) -> None:
    """Add the zoning commands to the main app."""
    parcels = typer.Typer(help="Parcel layers: import and list versions.", no_args_is_help=True)
    biomass = typer.Typer(help="Biomass from an index, calibrated on field quadrats.", no_args_is_help=True)
    app.add_typer(parcels, name="parcels")
    app.add_typer(biomass, name="biomass")

    @parcels.command("import")
    def parcels_import(
        file: Path = typer.Argument(..., help="GeoJSON, GeoPackage, Shapefile (.shp or .zip), KML, FlatGeobuf or CSV with WKT."),
        layer: str = typer.Option(None, "--layer", help="Layer name in a multi-layer file."),
        id_field: str = typer.Option(None, "--id-field", help="Field holding the parcel id (default: recognised names)."),
        crs: str = typer.Option(None, "--crs", help="CRS of the coordinates when the file has none (e.g. EPSG:28418)."),
        as_json: bool = typer.Option(False, "--json", help="Print the import report as JSON."),
    ) -> None:
        """Import a parcel layer as the workspace's new parcel version."""
        from belcheer.zoning import import_parcels

        res = import_parcels(_common.workspace(), file, layer=layer, id_field=id_field, crs=crs)
        rep = res.report
        if as_json:
            _common.print_json(rep)
            return
        _common.out.print(f"parcels v{res.version}: {rep['feature_count']} parcels, {rep['area_ha']:.1f} ha "
                          f"(from {rep.get('source_crs')})")
        for key in ("repaired", "dropped", "overlaps", "slivers"):
            if rep.get(key):
                _common.out.print(f"  {key}: {len(rep[key])}: {rep[key][:5]}")

    @parcels.command("list")
    def parcels_list(as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
        """List the stored parcel versions (the current one has no end date)."""
        versions = _common.workspace().catalog.parcel_versions()
        rows = [{"version": v.version, "features": v.feature_count, "source": v.source,
                 "valid_from": v.valid_from, "valid_to": v.valid_to, "path": str(v.path)} for v in versions]
        if as_json:
            _common.print_json(rows)
            return
        t = Table("version", "features", "source", "valid from", "valid to")
        for r in rows:
            t.add_row(str(r["version"]), str(r["features"]), r["source"] or "", r["valid_from"], r["valid_to"] or "current")
        _common.out.print(t)

    @app.command("stats")
    def stats_cmd(
        survey: str = typer.Argument(..., help="Survey name."),
        index: str = typer.Option(None, "--index", help="Comma-separated index products (default: all)."),
        scheduler: str = typer.Option(None, "--scheduler", help="threads, processes, synchronous or tcp://host:port."),
        as_json: bool = typer.Option(False, "--json", help="Print the statistics as JSON."),
    ) -> None:
        """Per-parcel statistics of a survey's indices, stored in the catalog."""
        from belcheer.zoning import survey_stats

        ws = _common.workspace()
        with _common.progress_bar(not as_json) as cb:
            table = survey_stats(ws, survey, _split(index), scheduler=scheduler, progress=cb)
        if as_json:
            _common.print_json(_records(table))
            return
        t = Table("parcel", "name", "index", "mean", "p10", "p90", "valid")
        for r in _records(table)[:200]:
            t.add_row(r["parcel_id"], r.get("name") or "", r["index"], _f(r["mean"]), _f(r["p10"]),
                      _f(r["p90"]), _f(r["valid_fraction"], 2))
        _common.out.print(t)

    @biomass.command("calibrate")
    def biomass_calibrate(
        survey: str = typer.Argument(..., help="Survey name."),
        samples: Path = typer.Argument(..., help="CSV of quadrats: lon,lat (or x,y,crs) and dry_g (g per 50×50 cm) or biomass_kg_ha."),
        index: str = typer.Option("ndvi", "--index", help="Index product to regress on."),
        crs: str = typer.Option(None, "--crs", help="CRS of x/y columns."),
        as_json: bool = typer.Option(False, "--json", help="Print the model as JSON."),
    ) -> None:
        """Fit biomass (kg DM/ha) from an index to quadrat samples and write the biomass raster."""
        from belcheer.zoning import calibrate_survey

        model, prod = calibrate_survey(_common.workspace(), survey, samples, index=index, crs=crs)
        out = {**model.to_dict(), "product": prod.name if prod else None}
        if as_json:
            _common.print_json(out)
        else:
            _common.out.print(f"biomass = {model.slope:.1f} × {index} + {model.intercept:.1f} kg DM/ha  "
                              f"(R² {model.r2:.3f}, RMSE {model.rmse:.1f} kg/ha, n {model.n})")

    @app.command("condition")
    def condition_cmd(
        survey: str = typer.Argument(..., help="Survey name."),
        index: str = typer.Option("ndvi", "--index", help="Index (or 'biomass') product to classify."),
        eco_zone: str = typer.Option("steppe", "--eco-zone", help="Eco zone for pixels outside parcels."),
        as_json: bool = typer.Option(False, "--json", help="Print the product as JSON."),
    ) -> None:
        """Pasture recovery classes I–V as a raster, with each parcel's class shares."""
        from belcheer.zoning import condition_raster

        prod = condition_raster(_common.workspace(), survey, index=index, eco_zone=eco_zone)
        _common.print_json(prod.to_dict()) if as_json else _common.out.print(f"wrote {prod.uri}")

    @app.command("report")
    def report_cmd(
        survey: str = typer.Option(None, "--survey", help="Survey (default: the latest with statistics)."),
        out: Path = typer.Option(None, "--out", help="Write to .gpkg, .geojson, .fgb, .csv or .zip (Shapefile)."),
        pdf: Path = typer.Option(None, "--pdf", help="Write the soum report to print (A4 PDF)."),
        soum: str = typer.Option(None, "--soum", help="Only this soum's parcels (by their soum attribute)."),
        lang: str = typer.Option("mn", "--lang", help="Language of the PDF: mn or en."),
        nso: Path = typer.Option(None, "--nso", help="Folder of the NSO soum tables (default: BELCHEER_NSO_DATA)."),
        min_share: float = typer.Option(None, "--min-share", help="Minimum surveyed share (0-1) to extrapolate "
                                                                  "a parcel's capacity (default 0.001)."),
        as_json: bool = typer.Option(False, "--json", help="Print the report as JSON."),
    ) -> None:
        """Per-parcel report: land use, surveyed share, condition class or crop indicators,
        capacity of the whole parcel against its registered herd; --pdf writes the soum report."""
        from belcheer.zoning import parcel_report
        from belcheer.zoning.capacity import CapacityParams

        params = CapacityParams(min_surveyed_share=min_share) if min_share is not None else None
        ws = _common.workspace()
        if pdf is not None:
            from belcheer.zoning.pdf import write_soum_report
            from belcheer.zoning.registry import livestock_or_none

            write_soum_report(ws, pdf, survey=survey, soum=soum, lang=lang, params=params,
                              livestock=livestock_or_none(nso or _common.settings().nso_data))
            _common.out.print(f"wrote {pdf}")
            if out is None and not as_json:
                return
        rep = parcel_report(ws, survey, params=params)
        if out is not None:
            _write_table(rep, out)
        if as_json:
            _common.print_json(_records(rep))
            return
        from belcheer.zoning.numbers import quantity, share

        t = Table("parcel", "name", "land use", "NDVI", "surveyed", "class", "SU/ha", "ha/SU",
                  "capacity SU", "registered SU", "balance SU")
        records = _records(rep)[:200]
        for r in records:
            t.add_row(r["parcel_id"], r.get("name") or "", r.get("land_use") or "", _f(r.get("ndvi_mean")),
                      share(r.get("surveyed_share")), r.get("condition_roman") or "—",
                      quantity(r.get("su_per_ha")), quantity(r.get("ha_per_su")), quantity(r.get("capacity_su")),
                      quantity(r.get("registered_su")), quantity(r.get("balance_su")))
        _common.out.print(t)
        for r in records:
            if r.get("capacity_status") not in (None, "ok", "not_grazing_land"):
                _common.out.print(f"  {r['parcel_id']}: {r.get('capacity_note_en')}")
        if out is not None:
            _common.out.print(f"wrote {out}")

    @app.command("change")
    def change_cmd(
        survey_a: str = typer.Argument(..., help="Earlier survey."),
        survey_b: str = typer.Argument(..., help="Later survey."),
        index: str = typer.Option("ndvi", "--index", help="Index product to compare."),
        threshold: float = typer.Option(0.05, "--threshold", help="|Δmean| flagged significant (index units)."),
        as_json: bool = typer.Option(False, "--json", help="Print the parcel table as JSON."),
    ) -> None:
        """ΔNDVI raster, per-parcel change and degradation alerts between two surveys."""
        from belcheer.zoning import change

        res = change(_common.workspace(), survey_a, survey_b, index=index, threshold=threshold)
        if as_json:
            _common.print_json({"product": res.product.to_dict() if res.product else None,
                                "parcels": _records(res.table), "alerts": _records(res.alerts)})
            return
        harvests = int((res.table["change_kind"] == "harvest").sum())
        _common.out.print(f"wrote {res.product.uri if res.product else '—'}; "
                          f"{int(res.table['significant'].sum())} significant, {len(res.alerts)} degradation alert(s) "
                          f"on grazing land, {harvests} harvested crop field(s)")
        for r in _records(res.alerts):
            _common.out.print(f"  {r['parcel_id']} {r.get('name') or ''}: class {r['class_a']} → {r['class_b']}, "
                              f"Δ{index} {r['delta']:+.3f}")

    @app.command("rollup")
    def rollup_cmd(
        boundaries: Path = typer.Argument(None, help="Boundary layer (bag, soum or aimag polygons); "
                                                     "default: group by the parcels' own soum/aimag/bag."),
        level: str = typer.Option("soum", "--level", help="bag, soum or aimag."),
        name_field: str = typer.Option(None, "--name-field", help="Column naming the units."),
        survey: str = typer.Option(None, "--survey", help="Survey (default: the latest with statistics)."),
        nso: Path = typer.Option(None, "--nso", help="Folder of the NSO soum tables (default: BELCHEER_NSO_DATA)."),
        out: Path = typer.Option(None, "--out", help="Write to .gpkg, .geojson, .csv or .zip."),
        as_json: bool = typer.Option(False, "--json", help="Print JSON."),
    ) -> None:
        """Pasture and cropland per administrative unit: area, surveyed area, NDVI, capacity vs
        the parcels' registered herds and the soum's NSO-registered livestock."""
        import pyogrio

        from belcheer.zoning import parcel_report, rollup
        from belcheer.zoning.numbers import quantity
        from belcheer.zoning.registry import livestock_or_none

        livestock = livestock_or_none(nso or _common.settings().nso_data)
        table = rollup(parcel_report(_common.workspace(), survey),
                       pyogrio.read_dataframe(boundaries) if boundaries is not None else None,
                       level=level, name_field=name_field, livestock=livestock)
        if out is not None:
            _write_table(table, out)
        if as_json:
            _common.print_json(_records(table))
            return
        cols = [level, "parcels", "pasture ha", "surveyed ha", "pasture NDVI", "cropland ha", "cropland NDVI",
                "capacity SU", "registered SU", "balance SU"]
        if livestock is not None:
            cols += ["NSO heads", "NSO SU (est.)"]
        t = Table(*cols)
        for r in _records(table):
            cells = [str(r[level]), str(r["parcels"]), quantity(r.get("pasture_area_ha")),
                     quantity(r.get("surveyed_ha")), _f(r.get("pasture_ndvi_mean")),
                     quantity(r.get("cropland_area_ha")), _f(r.get("cropland_ndvi_mean")),
                     quantity(r.get("capacity_su")), quantity(r.get("registered_su")), quantity(r.get("balance_su"))]
            if livestock is not None:
                cells += [quantity(r.get("nso_heads")), quantity(r.get("nso_su_est"))]
            t.add_row(*cells)
        _common.out.print(t)

    @app.command("cover")
    def cover_cmd(
        survey: str = typer.Argument(..., help="Survey name (needs a reflectance mosaic)."),
        endmembers: Path = typer.Option(None, "--endmembers", help="Polygons over pure patches with a 'cover' column "
                                                                  "(green, dry, bare): endmembers from the survey."),
        as_json: bool = typer.Option(False, "--json", help="Print the parcel shares as JSON."),
    ) -> None:
        """Fractional cover per parcel: green vegetation, dry vegetation and bare ground shares."""
        import pyogrio

        from belcheer.zoning import cover_raster
        from belcheer.zoning.cover import endmembers_from_polygons

        ws = _common.workspace()
        em = None
        if endmembers is not None:
            with ws.product_file(ws.product(survey, "reflectance")) as refl:
                em = endmembers_from_polygons(refl, pyogrio.read_dataframe(endmembers))
        prod = cover_raster(ws, survey, endmembers=em)
        rows = [r for r in ws.catalog.stats(survey=survey, index_name="cover")]
        if as_json:
            _common.print_json({"product": prod.to_dict(), "parcels": rows})
            return
        _common.out.print(f"wrote {prod.uri}")
        t = Table("parcel", "green %", "dry %", "bare %", "valid")
        for r in rows[:200]:
            pct = [_f(None if r.get(f"{c}_cover") is None else 100 * r[f"{c}_cover"], 0)
                   for c in ("green", "dry", "bare")]
            t.add_row(r["parcel_id"], *pct, _f(r.get("cover_valid_fraction"), 2))
        _common.out.print(t)

    @app.command("landcover")
    def landcover_cmd(
        survey: str = typer.Argument(..., help="Survey name."),
        training: Path = typer.Argument(..., help="Training polygons (any vector file) with a class column: "
                                                  "cropland, pasture, bare_soil, water, built_up."),
        index: str = typer.Option("ndvi", "--index", help="Comma-separated index products to use ('all' = every one)."),
        bands: bool = typer.Option(True, "--bands/--no-bands", help="Also use the reflectance (or orthomosaic) bands."),
        class_field: str = typer.Option("class", "--class-field", help="Column holding the class."),
        as_json: bool = typer.Option(False, "--json", help="Print the accuracy report as JSON."),
    ) -> None:
        """Land-cover map from training polygons, with per-class precision, recall and F1 on held-back polygons."""
        import pyogrio

        from belcheer.zoning import landcover_raster

        res = landcover_raster(_common.workspace(), survey, pyogrio.read_dataframe(training),
                               indices=None if index == "all" else tuple(_split(index) or ()),
                               bands=bands, class_field=class_field)
        if as_json:
            _common.print_json(res.to_dict())
            return
        _common.out.print(f"wrote {res.report.get('product', '—')} ({res.report.get('validation')}; "
                          f"layers {', '.join(res.report.get('layers', []))})")
        if res.per_class is not None:
            t = Table("class", "precision", "recall", "F1", "pixels", "polygons")
            for name, r in res.per_class.iterrows():
                t.add_row(str(name), _f(r["precision"], 2), _f(r["recall"], 2), _f(r["f1"], 2),
                          str(int(r["pixels"])), str(int(r["polygons"])))
            _common.out.print(t)
            _common.out.print(f"overall accuracy {_f(res.accuracy, 3)}, kappa {_f(res.kappa, 3)} "
                              "(held-back polygons: an upper bound on the map's accuracy)")
        if res.report.get("not_validated"):
            _common.out.print(f"not validated (one polygon only): {', '.join(res.report['not_validated'])}")

    @app.command("zones")
    def zones_cmd(
        survey: str = typer.Argument(..., help="Survey name."),
        index: str = typer.Option("ndvi", "--index", help="Index product."),
        method: str = typer.Option("kmeans", "--method", help="kmeans, jenks or quantile."),
        classes: int = typer.Option(5, "--classes", help="Number of zones, 2–32."),
        mmu_m2: float = typer.Option(0.0, "--mmu-m2", help="Minimum mapping unit, m²."),
        land_use: str = typer.Option("cropland", "--land-use", help="Parcels to zone ('all' for every parcel)."),
        rates: str = typer.Option(None, "--rates", help="Application rate per zone, lowest zone first (e.g. 120,100,80 kg/ha): adds a 'rate' column."),
        out: Path = typer.Option(None, "--out", help="Prescription Shapefile zip (default: the survey's reports folder)."),
        as_json: bool = typer.Option(False, "--json", help="Print JSON."),
    ) -> None:
        """Management zones inside crop fields, exported as a prescription Shapefile (zip)."""
        from belcheer.zoning import export_prescription, load_parcels
        from belcheer.zoning.zones import parcel_zones, parse_rates, zone_rates

        ws = _common.workspace()
        rate_list = parse_rates(rates)
        if rate_list is not None and len(rate_list) != classes:
            raise InputError(f"--rates gives {len(rate_list)} rate(s) for --classes {classes}; give one per zone")
        prod = ws.product(survey, index)
        with ws.product_file(prod) as raster:
            zones = parcel_zones(raster, load_parcels(ws), method=method, n_classes=classes, mmu_m2=mmu_m2,
                                 land_use=None if land_use == "all" else land_use)
        zones = zone_rates(zones, rate_list)
        target = out or ws.report_dir(survey) / f"zones-{index}.zip"
        export_prescription(zones, target)
        if as_json:
            _common.print_json({"path": str(target), "zones": _records(zones)})
        else:
            _common.out.print(f"{len(zones)} zone polygon(s) in {zones['parcel_id'].nunique()} field(s) → {target}")


def _f(v: Any, digits: int = 3) -> str:
    try:
        return "—" if v is None or v != v else f"{float(v):.{digits}f}"
    except (TypeError, ValueError):
        return str(v)
