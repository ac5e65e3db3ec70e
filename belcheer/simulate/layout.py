"""The vector layout of a simulated scene: parcels, well, winter camp, tracks, pond, crop fields,
checkpoint targets and land-cover training polygons, all in UTM metres (EPSG:32648).

The layout depends only on the scene seed and the flight area, never on the date or on the
degradation, so two surveys with the same ``scene_seed`` see the same place.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import geopandas as gpd
import numpy as np
import shapely
from shapely.geometry import LineString, MultiPoint, Point, Polygon, box

from belcheer.errors import ConfigError
from belcheer.models import PARCEL_COLUMNS

#: Where the scene lies: Bayangol soum, Selenge aimag (forest steppe of the Orkhon–Selenge basin).
CENTER_LONLAT: tuple[float, float] = (106.16, 48.942)
EPSG: int = 32648
AIMAG: str = "Сэлэнгэ"
AIMAG_EN: str = "Selenge"
SOUM: str = "Баянгол"
SOUM_EN: str = "Bayangol"
#: ground height above mean sea level, metres (flat terrain is assumed everywhere)
GROUND_ALT_M: float = 925.0

PASTURE_NAMES = ("Хужирт", "Шар нуруу", "Улаан даваа", "Бор өндөр", "Хөх толгой", "Цагаан овоо",
                 "Хар ус", "Баян булаг", "Ногоон хөндий", "Тэмээн хүзүү", "Өвөлжөөний ам")
HERDER_GROUPS = ("Хужирт хэсэг", "Бат-Эрдэнэ бүлэг", "Ганбаатар бүлэг", "Хөтөл нөхөрлөл",
                 "Өлзийт бүлэг", "Цогт нөхөрлөл")
BAGS = ("Хонгор баг", "Зүүн баг")
CROP_USERS = ("Баянгол Агро ХХК", "Сэлэнгэ Тариа ХХК")
CROPS = (("улаан буудай", 200), ("арвай", 206), ("овъёос", 212), ("рапс", 196))


@dataclass(frozen=True)
class Layout:
    """Everything placed in the scene, in UTM metres. ``parcels`` follows PARCEL_COLUMNS."""

    center_xy: tuple[float, float]
    half_m: float
    parcels: gpd.GeoDataFrame
    #: per parcel: degraded when the survey's degradation > 0; crop peak day for crop fields
    degraded_ids: tuple[str, ...]
    crop_peak_doy: dict[str, int]
    well_xy: tuple[float, float]
    camp_xy: tuple[float, float]
    piosphere_m: float
    pond: Polygon
    corral: Polygon
    gers: tuple[Polygon, ...]
    roofs: tuple[Polygon, ...]
    tracks: tuple[Polygon, ...]
    #: checkpoint id → (x, y): the centre of a 2×2 black/white checker target
    checkpoints: dict[str, tuple[float, float]]
    target_size_m: float
    training: gpd.GeoDataFrame
    gradient_dir_rad: float
    #: a textureless lake (``simulate(lake_fraction=…)``), drawn over everything but the targets
    lake: Polygon | None = None


#: Pasture-use areas reach this far (metres, from the flown pasture's centre): a herder group's
#: pasture is tens to hundreds of hectares, of which one drone flight sees a part.
PASTURE_REACH_M: tuple[float, float] = (900.0, 2500.0)
#: Crop fields run this far east of the flown square, metres (the outer ones as far north/south).
FIELD_REACH_M: float = 300.0


def flown_square(layout: Layout) -> Polygon:
    """The flown square (UTM metres): parcels reach beyond it, scene features do not."""
    cx, cy = layout.center_xy
    return box(cx - layout.half_m, cy - layout.half_m, cx + layout.half_m, cy + layout.half_m)


def _pasture_cells(zone: Polygon, n: int, rng: np.random.Generator, road_x: float) -> list[Polygon]:
    """``n`` pasture-use areas as wedges about the flown pasture ``zone``'s centre, each reaching
    out 0.9–2.5 km (west of the road at ``road_x``): every parcel is partly surveyed and tens to
    hundreds of hectares large. Uses 2n uniforms of ``rng``, as many as a plain Voronoi split."""
    u_angle, u_reach = rng.uniform(0, 1, n), rng.uniform(0, 1, n)
    pc = zone.centroid
    # stratified angles over the western 160°: no wedge is trapped between its neighbours and
    # the road (the two outer ones take the land along the road), none is thinner than 8°
    theta = np.radians(100.0 + 160.0 * (np.arange(n) + 0.25 + 0.5 * u_angle) / n)
    seeds = MultiPoint([(pc.x + 300.0 * np.cos(t), pc.y + 300.0 * np.sin(t)) for t in theta])
    far = PASTURE_REACH_M[1] + 10.0
    land = box(pc.x - far, pc.y - far, road_x, pc.y + far)
    cells = shapely.voronoi_polygons(seeds, extend_to=land)
    reach = PASTURE_REACH_M[0] + (PASTURE_REACH_M[1] - PASTURE_REACH_M[0]) * u_reach
    out = []
    for cell in cells.geoms:
        # the wedge's own reach: the seed inside it tells which one
        i = next(k for k, pt in enumerate(seeds.geoms) if cell.contains(pt))
        piece = cell.intersection(land).intersection(pc.buffer(reach[i], 64))
        piece = piece.union(cell.intersection(zone))  # the flown part is always whole
        if piece.geom_type == "MultiPolygon":
            piece = max(piece.geoms, key=lambda g: g.area)
        if piece.area > 1.0 and piece.intersection(zone).area > 1.0:
            out.append(piece)
    # order west→east, north→south of their flown part so ids read like a map
    out.sort(key=lambda p: (round(p.intersection(zone).centroid.x / 10), -p.intersection(zone).centroid.y))
    return out


def plan_layout(center_xy: tuple[float, float], half_m: float, margin_m: float,
                rng: np.random.Generator) -> Layout:
    """Place parcels and features in the square flight area ``center ± half_m`` (metres, UTM).

    The western part is pasture: 6–10 pasture-use areas of tens to hundreds of hectares
    reaching far beyond the flight (one holds the winter camp, one the well), so each is partly
    surveyed; the eastern third holds 2–4 crop fields east of a north–south road, also
    extending beyond the flight. Parcels are in UTM metres; everything else lies in the flight.
    """
    cx, cy = center_xy
    h = half_m
    xc = cx + 0.3 * h                    # road centre line
    gap = 2.0                            # half width of the road corridor, m
    pasture_zone = box(cx - h, cy - h, xc - gap, cy + h)

    n_crop = int(rng.integers(2, 5))
    n_past = int(rng.integers(6, 11))
    cells = _pasture_cells(pasture_zone, n_past, rng, xc - gap)
    edges = np.linspace(cy - h, cy + h, n_crop + 1)
    fields = [box(xc + gap, edges[i] + 0.5, cx + h, edges[i + 1] - 0.5) for i in range(n_crop)]
    # the whole fields: on east beyond the flight, the outer ones north and south too
    whole_fields = [box(xc + gap, f.bounds[1] - (FIELD_REACH_M if i == 0 else 0.0), cx + h + FIELD_REACH_M,
                        f.bounds[3] + (FIELD_REACH_M if i == n_crop - 1 else 0.0)) for i, f in enumerate(fields)]

    well = (cx - 0.35 * h + rng.uniform(-0.05, 0.05) * h, cy + 0.25 * h + rng.uniform(-0.05, 0.05) * h)
    camp = (cx - 0.68 * h, cy - 0.6 * h)
    piosphere = max(6.0, 0.28 * h)

    cw, ch = max(8.0, 0.2 * h), max(6.0, 0.14 * h)
    corral = box(camp[0] - cw / 2, camp[1] - ch / 2, camp[0] + cw / 2, camp[1] + ch / 2)
    gers = (Point(camp[0] - 2.0, camp[1] + ch / 2 + 5.0).buffer(2.9, 32),
            Point(camp[0] + 5.0, camp[1] + ch / 2 + 5.5).buffer(2.6, 32))
    roofs = (box(camp[0] - cw / 2 - 4.5, camp[1] - 1.5, camp[0] - cw / 2 - 0.5, camp[1] + 1.5),
             Point(*well).buffer(0.9, 16))
    r_pond = max(3.0, 0.06 * h)
    pond = Point(well[0] + max(7.0, 0.12 * h), well[1] - max(5.0, 0.1 * h)).buffer(r_pond, 48)

    far = h + margin_m
    lines = [
        LineString([(xc, cy - far), (xc, cy + far)]),                       # the road
        LineString([camp, (camp[0] + 0.1 * h, camp[1] + 0.4 * h), well]),  # camp → well
        LineString([well, (xc, well[1] + 0.1 * h)]),                        # well → road
        LineString([(camp[0] - cw / 2, camp[1]), (cx - far, camp[1] - 0.1 * h)]),  # westward
    ]
    tracks = tuple(ln.buffer(1.25, cap_style="flat") for ln in lines)

    checkpoints = {f"CP{i + 1}": (cx + fx * h, cy + fy * h) for i, (fx, fy) in enumerate(
        [(-0.78, 0.8), (0.78, 0.8), (-0.1, -0.12), (-0.78, -0.85), (0.78, -0.8)])}
    target = 1.2

    # parcels table ---------------------------------------------------------------------------
    camp_pt = Point(camp)
    names = list(PASTURE_NAMES)
    rng.shuffle(names)
    rows = []
    n_deg = max(1, len(cells) // 3)
    deg_idx = set(rng.choice(len(cells), size=n_deg, replace=False).tolist())
    degraded: list[str] = []
    seasons = ("spring", "summer", "autumn", "all")
    for i, cell in enumerate(cells):
        pid = f"BYG-{i + 1:03d}"
        winter = cell.contains(camp_pt)
        heads = rng.integers([0, 5, 3, 60, 40], [6, 40, 30, 400, 300])
        rows.append({
            "parcel_id": pid, "name": names[i % len(names)] + ("" if i < len(names) else f" {i}"),
            "land_use": "pasture", "season": "winter" if winter else seasons[int(rng.integers(0, 4))],
            "user_group": HERDER_GROUPS[i % len(HERDER_GROUPS)], "aimag": AIMAG, "soum": SOUM,
            "bag": BAGS[0] if cell.centroid.y >= cy else BAGS[1], "eco_zone": "forest_steppe",
            "camel": int(heads[0]), "horse": int(heads[1]), "cattle": int(heads[2]),
            "sheep": int(heads[3]), "goat": int(heads[4]), "area_ha": cell.area / 1e4,
            "geometry": cell})
        if i in deg_idx:
            degraded.append(pid)
    crop_peak: dict[str, int] = {}
    for j, field in enumerate(whole_fields):
        pid = f"BYG-{len(cells) + j + 1:03d}"
        crop, peak = CROPS[j % len(CROPS)]
        crop_peak[pid] = peak
        rows.append({
            "parcel_id": pid, "name": f"Тариан талбай №{j + 1} ({crop})", "land_use": "cropland",
            "season": "summer", "user_group": CROP_USERS[j % 2], "aimag": AIMAG, "soum": SOUM,
            "bag": BAGS[1], "eco_zone": "forest_steppe", "camel": 0, "horse": 0, "cattle": 0,
            "sheep": 0, "goat": 0, "area_ha": field.area / 1e4, "geometry": field})
    parcels = gpd.GeoDataFrame(rows, columns=[*PARCEL_COLUMNS, "geometry"], geometry="geometry",
                               crs=f"EPSG:{EPSG}")

    training = _training_polygons(pasture_zone, fields, tracks, corral, gers, roofs, pond,
                                  well, piosphere, camp, checkpoints, target, rng)
    return Layout(center_xy=(cx, cy), half_m=h, parcels=parcels, degraded_ids=tuple(degraded),
                  crop_peak_doy=crop_peak, well_xy=well, camp_xy=camp, piosphere_m=piosphere,
                  pond=pond, corral=corral, gers=gers, roofs=roofs, tracks=tracks,
                  checkpoints=checkpoints, target_size_m=target, training=training,
                  gradient_dir_rad=float(rng.uniform(0, 2 * np.pi)))


def _training_polygons(pasture_zone, fields, tracks, corral, gers, roofs, pond, well, piosphere,
                       camp, checkpoints, target, rng) -> gpd.GeoDataFrame:
    """Polygons well inside one land cover each, labelled cropland/pasture/bare/water/built."""
    recs: list[tuple[str, Polygon]] = []
    targets = shapely.union_all([Point(p).buffer(target + 1.0) for p in checkpoints.values()])
    for f in fields:
        inner = f.buffer(-max(1.0, 0.15 * min(f.bounds[2] - f.bounds[0], f.bounds[3] - f.bounds[1])))
        inner = inner.difference(targets)
        if not inner.is_empty:
            recs.append(("cropland", inner))
    busy = shapely.union_all([*tracks, corral.buffer(3), *[g.buffer(2) for g in gers],
                              *[r.buffer(2) for r in roofs], pond.buffer(3),
                              Point(well).buffer(2.5 * piosphere),
                              *[Point(p).buffer(target + 2) for p in checkpoints.values()]])
    minx, miny, maxx, maxy = pasture_zone.bounds
    size = 3.0
    placed = 0
    for _ in range(400):
        x, y = rng.uniform(minx + size, maxx - size), rng.uniform(miny + size, maxy - size)
        sq = box(x - size / 2, y - size / 2, x + size / 2, y + size / 2)
        if not sq.intersects(busy) and pasture_zone.contains(sq):
            recs.append(("pasture", sq))
            busy = busy.union(sq.buffer(2))
            placed += 1
            if placed == 4:
                break
    # bare: the inner part of the corral and short pieces of the road's centre line
    recs.append(("bare", corral.buffer(-1.0)))
    road = tracks[0]
    rminx, rminy, rmaxx, rmaxy = road.bounds
    xm = (rminx + rmaxx) / 2
    for yy in (camp[1], well[1]):
        recs.append(("bare", box(xm - 0.6, yy - 3.0, xm + 0.6, yy + 3.0)))
    recs.append(("water", pond.buffer(-1.0)))
    for g in gers:
        recs.append(("built", g.buffer(-0.6)))
    recs.append(("built", roofs[0].buffer(-0.4)))
    codes = {"pasture": 1, "cropland": 2, "bare": 3, "water": 4, "built": 5}
    return gpd.GeoDataFrame({"class": [c for c, _ in recs], "class_code": [codes[c] for c, _ in recs]},
                            geometry=[g for _, g in recs], crs=f"EPSG:{EPSG}")


#: a frame is "over water" when at least this share of its footprint lies on the lake
OVER_WATER_SHARE = 0.8


def water_share(footprints: list[Polygon], water: Polygon) -> np.ndarray:
    """Share (0…1) of each footprint's area on ``water`` (UTM metres)."""
    fps = np.asarray(footprints, dtype=object)
    return shapely.area(shapely.intersection(fps, water)) / shapely.area(fps)


def _blob(center: tuple[float, float], r0: float, wobble: tuple[float, float, float, float]) -> Polygon:
    a2, p2, a3, p3 = wobble
    th = np.linspace(0, 2 * np.pi, 97)[:-1]
    r = r0 * (1 + a2 * np.sin(2 * th + p2) + a3 * np.sin(3 * th + p3))
    return Polygon(np.column_stack([center[0] + r * np.cos(th), center[1] + r * np.sin(th)]))


def place_lake(layout: Layout, footprints: list[Polygon], fraction: float,
               rng: np.random.Generator) -> Layout:
    """Add a textureless lake under about ``fraction`` of the frames (UTM metres).

    The lake is a rounded blob about the frame nearest the flight area's north-east corner
    (away from the winter camp), grown until the number of frames with at least
    :data:`OVER_WATER_SHARE` of their footprint on water is nearest ``fraction`` of all frames
    (at least one). Checkpoint targets and training polygons under the lake are removed and
    the parcels are clipped to the shore (their ``area_ha`` recomputed).
    """
    n = len(footprints)
    want = max(1, round(fraction * n))
    cx, cy = layout.center_xy
    h = layout.half_m
    corner = (cx + h * rng.uniform(0.8, 1.0), cy + h * rng.uniform(0.8, 1.0))
    cents = np.array([(p.centroid.x, p.centroid.y) for p in footprints])
    k0 = int(np.argmin(np.hypot(cents[:, 0] - corner[0], cents[:, 1] - corner[1])))
    center = (float(cents[k0, 0]), float(cents[k0, 1]))
    wobble = (float(rng.uniform(0.04, 0.12)), float(rng.uniform(0, 2 * np.pi)),
              float(rng.uniform(0.03, 0.08)), float(rng.uniform(0, 2 * np.pi)))

    def count(r0: float) -> int:
        return int((water_share(footprints, _blob(center, r0, wobble)) >= OVER_WATER_SHARE).sum())

    lo, hi = 0.0, 10.0 * max(max(p.bounds[2] - p.bounds[0], p.bounds[3] - p.bounds[1]) for p in footprints)
    for _ in range(40):        # smallest radius reaching ``want`` frames
        mid = (lo + hi) / 2
        lo, hi = (lo, mid) if count(mid) >= want else (mid, hi)
    # the count rises in steps: keep the radius just below the step when that lands nearer
    r0 = lo if abs(count(lo) - fraction * n) < abs(count(hi) - fraction * n) and count(lo) > 0 else hi
    lake = _blob(center, r0, wobble)

    shore = lake.buffer(layout.target_size_m + 1.0)
    checkpoints = {k: xy for k, xy in layout.checkpoints.items() if not shore.contains(Point(xy))}
    training = layout.training[~layout.training.intersects(lake)].reset_index(drop=True)
    parcels = layout.parcels.copy()
    parcels["geometry"] = parcels.geometry.difference(lake)
    parcels = parcels[parcels.geometry.area > 1.0].reset_index(drop=True)
    parcels["area_ha"] = parcels.geometry.area / 1e4
    # pasture-use areas reach beyond the flight: what matters is pasture left to survey
    flown = flown_square(layout)
    past = parcels[parcels.land_use == "pasture"]
    if not (past.geometry.intersection(flown).area > 1.0).any():
        raise ConfigError(f"a lake under {fraction:.0%} of the frames would flood every pasture "
                          "parcel's flown part; lower the lake fraction or fly a larger area")
    kept = set(parcels.parcel_id)
    return replace(layout, lake=lake, checkpoints=checkpoints, training=training, parcels=parcels,
                   degraded_ids=tuple(p for p in layout.degraded_ids if p in kept),
                   crop_peak_doy={k: v for k, v in layout.crop_peak_doy.items() if k in kept})
