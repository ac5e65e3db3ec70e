"""The truth raster: per-band surface reflectance of the scene on a fine UTM grid.

Pixels are linear mixtures of the endmembers in :mod:`belcheer.simulate.spectra`:

* pasture: ``c·(g·grass + (1−g)·litter) + (1−c)·soil``, where the cover ``c`` is a smooth
  field (1 m grid, σ 12 m) with a linear degradation gradient, a grazing piosphere round the
  well ``c ← c·(1 − 0.95·exp(−d/λ))`` (cover rises with distance ``d``), trampling round the
  camp, tussock texture (0.24 m grid) and, in parcels marked degraded, ``c ← c·(1 − 0.6·D)``
  for the survey's degradation ``D``; ``g`` is the date's green fraction;
* crop: ``cc·crop + (1−cc)·soil`` with the crop's seasonal cover and a 0.6 m row pattern;
* shrubs, stones and dung spots as small discs (0.1–0.35 m radius) on the pasture, tracks,
  trampled camp ground, water, gers and roofs, and 2×2 black/white checker targets;
* everything times a per-pixel texture ``1 + 0.04·n`` (n standard normal).

The fractional cover truth follows the same mixture: green vegetation ``c·g`` (crop ``cc``,
shrubs 1), dry/senescent vegetation ``c·(1−g)``, bare ground ``1−c`` (crop ``1−cc``; stones,
soil spots, tracks and camp ground count as bare, a track's 10 % vegetation as vegetation);
water, gers, wood, roofs and targets are not ground cover (``COVER_NODATA``).

Reflectance is stored as uint16 = round(ρ·10000); the truth COG holds exactly these values
divided by 10000, so the frames and the truth agree to the last digit.
"""

from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass

import cv2
import numpy as np
from odc.geo.geobox import GeoBox
from rasterio import features
from scipy import ndimage
from shapely.geometry import box

from belcheer.simulate.layout import Layout
from belcheer.simulate.spectra import ENDMEMBERS, Cover, crop_cover, green_fraction

#: reflectance scale of the uint16 truth arrays (also of the cover fractions)
SCALE = 10000.0
#: fractional-cover truth value of pixels that are not ground cover (water, gers, roofs …)
COVER_NODATA = 65535
#: band order of ``Truth.cover``
COVER_CLASSES = ("green", "dry", "bare")

# material codes burnt into the material raster (order = drawing order, later wins)
_PASTURE, _CROP, _TRACK, _CAMP, _WATER, _FELT, _WOOD, _ROOF, _TWHITE, _TBLACK = range(10)
_MATERIAL_COVER = np.array([Cover.PASTURE, Cover.CROPLAND, Cover.BARE, Cover.BARE, Cover.WATER,
                            Cover.BUILT, Cover.BUILT, Cover.BUILT, Cover.TARGET, Cover.TARGET],
                           np.uint8)


@dataclass(frozen=True)
class Truth:
    """The rendered truth: ``reflectance`` uint16 (band, y, x) scaled by 10000 in band order
    blue, green, red, rededge, nir; ``landcover`` uint8 :class:`Cover` codes; ``geobox`` the grid;
    ``cover`` uint16 (3, y, x) green/dry/bare fractions × 10000 (``COVER_NODATA`` = not ground)."""

    reflectance: np.ndarray
    landcover: np.ndarray
    geobox: GeoBox
    cover: np.ndarray | None = None


def _smooth_field(shape: tuple[int, int], sigma_px: float, rng: np.random.Generator) -> np.ndarray:
    """Gaussian-filtered white noise rescaled to zero mean and unit standard deviation."""
    f = ndimage.gaussian_filter(rng.standard_normal(shape).astype(np.float32), sigma_px, mode="wrap")
    return ((f - f.mean()) / (f.std() + 1e-12)).astype(np.float32)


def _material_raster(layout: Layout, geobox: GeoBox) -> tuple[np.ndarray, np.ndarray]:
    """Material codes and parcel index (0 = no parcel, i+1 = parcels row i) on the truth grid."""
    shape = geobox.shape
    tr = geobox.transform
    shapes: list[tuple[object, int]] = []
    crop = layout.parcels[layout.parcels.land_use == "cropland"]
    shapes += [(g, _CROP) for g in crop.geometry]
    shapes += [(t, _TRACK) for t in layout.tracks]
    shapes += [(layout.corral, _CAMP), (layout.corral.exterior.buffer(0.15), _WOOD)]
    shapes += [(layout.pond, _WATER)]
    shapes += [(g, _FELT) for g in layout.gers]
    shapes += [(r, _ROOF) for r in layout.roofs]
    if layout.lake is not None:
        shapes += [(layout.lake, _WATER)]
    s = layout.target_size_m / 2
    for x, y in layout.checkpoints.values():
        shapes += [(box(x - s - 0.3, y - s - 0.3, x + s + 0.3, y + s + 0.3), _TWHITE),
                   (box(x, y, x + s, y + s), _TBLACK), (box(x - s, y - s, x, y), _TBLACK)]
    material = features.rasterize(shapes, out_shape=shape, transform=tr, fill=_PASTURE,
                                  dtype="uint8")
    pid = features.rasterize([(g, i + 1) for i, g in enumerate(layout.parcels.geometry)],
                             out_shape=shape, transform=tr, fill=0, dtype="uint8")
    return material, pid


def _dots(shape: tuple[int, int], res: float, rng: np.random.Generator) -> np.ndarray:
    """Shrubs (1), stones (2) and dung/bare spots (3) as small discs: the fine, high-contrast
    texture that feature matchers need on otherwise smooth grassland."""
    h, w = shape
    area_m2 = h * w * res * res
    n = int(area_m2 * 0.35)
    out = np.zeros(shape, np.uint8)
    xs = rng.uniform(0, w, n)
    ys = rng.uniform(0, h, n)
    kinds = rng.choice([1, 2, 3], size=n, p=[0.45, 0.3, 0.25])
    radii = rng.uniform(0.10, 0.35, n) / res
    shift = 3
    f = 1 << shift
    for x, y, k, r in zip(xs, ys, kinds, radii, strict=True):
        cv2.circle(out, (int(x * f), int(y * f)), max(int(r * f), f), int(k), -1, cv2.LINE_8, shift)
    return out


#: pasture texture: amplitudes of the tussock field and of the per-pixel noise, and the contrast
#: of the shrub/stone/dung discs (1 = their own reflectance, 0 = invisible); "low" is uniform
#: steppe grass, the normal ground in Mongolia
TEXTURE = {"normal": (0.07, 0.04, 1.0), "low": (0.05, 0.03, 0.22)}


def render_truth(layout: Layout, geobox: GeoBox, date: _dt.date, degradation: float,
                 scene_seed: int, block_rows: int = 256, texture: str = "normal") -> Truth:
    """Render the scene's surface reflectance on ``geobox`` (north-up UTM grid, metres).

    Random fields depend on ``scene_seed`` only; ``date`` and ``degradation`` change the
    vegetation, never the geometry or the texture. ``texture`` "low" leaves out the shrub,
    stone and dung discs and weakens the tussock and per-pixel texture (:data:`TEXTURE`).
    """
    if not 0.0 <= degradation <= 1.0:
        raise ValueError(f"degradation must be within 0…1, got {degradation}")
    if texture not in TEXTURE:
        raise ValueError(f"texture must be one of {sorted(TEXTURE)}, got {texture!r}")
    tussock, grain, dot_contrast = TEXTURE[texture]
    rng = np.random.default_rng([scene_seed, 101])
    h, w = geobox.shape
    res = float(geobox.resolution.x)
    left, top = geobox.transform.c, geobox.transform.f
    material, pid = _material_raster(layout, geobox)
    dots = _dots((h, w), res, rng)

    # coarse (1 m) and tussock (0.24 m) fields, sampled at fine pixel centres below
    c_res, m_res = 1.0, 0.24
    coarse = _smooth_field((int(h * res / c_res) + 3, int(w * res / c_res) + 3), 12.0, rng)
    mid = _smooth_field((int(h * res / m_res) + 3, int(w * res / m_res) + 3), 1.2, rng)

    g = green_fraction(date)
    deg_factor = np.ones(len(layout.parcels) + 1, np.float32)
    crop_cc = np.zeros(len(layout.parcels) + 1, np.float32)
    for i, pidv in enumerate(layout.parcels.parcel_id):
        if pidv in layout.degraded_ids:
            deg_factor[i + 1] = 1.0 - 0.6 * degradation
        if pidv in layout.crop_peak_doy:
            crop_cc[i + 1] = crop_cover(date, layout.crop_peak_doy[pidv])
    em = ENDMEMBERS
    veg = g * em["green_grass"] + (1 - g) * em["litter"]
    cx, cy = layout.center_xy
    wx, wy = layout.well_xy
    kx, ky = layout.camp_xy
    gd = (np.cos(layout.gradient_dir_rad), np.sin(layout.gradient_dir_rad))
    span = w * res / 2

    refl = np.empty((5, h, w), np.uint16)
    cover_out = np.empty((h, w), np.uint8)
    frac_out = np.empty((3, h, w), np.uint16)
    # metres from the scene centre, float32 is ample at this scale (< 10 km)
    xs = (left - cx + (np.arange(w) + 0.5) * res).astype(np.float32)
    col_c = ((np.arange(w) + 0.5) * res / c_res - 0.5).astype(np.float32)
    soil, track = em["soil"], 0.9 * em["track"] + 0.1 * veg
    fixed = ((_TRACK, track), (_CAMP, 0.6 * em["soil"] + 0.4 * em["track"]), (_WATER, em["water"]),
             (_FELT, em["felt"]), (_WOOD, em["wood"]), (_ROOF, em["roof"]),
             (_TWHITE, em["target_white"]), (_TBLACK, em["target_black"]))
    row_pattern = (1.0 + 0.15 * np.sin(2 * np.pi * (np.arange(w) + 0.5) * res / 0.6)).astype(np.float32)
    for b0 in range(0, h, block_rows):
        b1 = min(h, b0 + block_rows)
        n = b1 - b0
        ys = (top - cy - (np.arange(b0, b1) + 0.5) * res).astype(np.float32)
        X = np.broadcast_to(xs, (n, w))
        Y = np.broadcast_to(ys[:, None], (n, w))
        mx = np.broadcast_to(col_c, (n, w))
        my = np.broadcast_to((((np.arange(b0, b1) + 0.5) * res / c_res - 0.5).astype(np.float32))[:, None], (n, w))
        mx, my = np.ascontiguousarray(mx), np.ascontiguousarray(my)
        n_coarse = cv2.remap(coarse, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
        k = np.float32(c_res / m_res)
        n_mid = cv2.remap(mid, mx * k + (k - 1) / 2, my * k + (k - 1) / 2, cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_REFLECT)
        grad = (X * np.float32(gd[0]) + Y * np.float32(gd[1])) / np.float32(span)   # −1…1
        c = np.float32(0.60) - np.float32(0.12) * grad + np.float32(0.10) * n_coarse \
            + np.float32(tussock) * n_mid
        c *= 1.0 - 0.95 * np.exp(-np.hypot(X - np.float32(wx - cx), Y - np.float32(wy - cy))
                                 / np.float32(layout.piosphere_m))
        c *= 1.0 - 0.6 * np.exp(-np.hypot(X - np.float32(kx - cx), Y - np.float32(ky - cy)) / np.float32(15.0))
        pb = pid[b0:b1]
        c *= deg_factor[pb]
        np.clip(c, 0.02, 0.95, out=c)
        mat = material[b0:b1]
        dt = dots[b0:b1]
        out = c[..., None] * veg + (1 - c[..., None]) * soil                   # pasture
        frac = np.stack([c * np.float32(g), c * np.float32(1 - g), 1 - c])  # green, dry, bare
        crop = mat == _CROP
        if crop.any():
            cc = np.clip(crop_cc[pb[crop]] * row_pattern[np.nonzero(crop)[1]]
                         * (1 + 0.05 * n_mid[crop]), 0, 1)[:, None]
            out[crop] = cc * em["crop"] + (1 - cc) * soil
            frac[:, crop] = np.stack([cc[:, 0], np.zeros_like(cc[:, 0]), 1 - cc[:, 0]])
        past = mat == _PASTURE
        for code, name in ((1, "shrub"), (2, "stone"), (3, "soil")):
            sel = past & (dt == code)
            dot = np.array([[1.0], [0.0], [0.0]] if code == 1 else [[0.0], [0.0], [1.0]], np.float32)
            if dot_contrast == 1.0:
                out[sel] = em[name] * (0.8 if code == 3 else 1.0)
                frac[:, sel] = dot
            else:
                # a faint disc is a mix of the disc and the grass round it, in cover too
                out[sel] = (dot_contrast * em[name] * (0.8 if code == 3 else 1.0)
                            + (1 - dot_contrast) * out[sel])
                frac[:, sel] = dot_contrast * dot + (1 - dot_contrast) * frac[:, sel]
        for code, val in fixed:
            out[mat == code] = val
        frac[:, mat == _TRACK] = np.array([[0.1 * g], [0.1 * (1 - g)], [0.9]], np.float32)
        frac[:, mat == _CAMP] = np.array([[0.0], [0.0], [1.0]], np.float32)
        frac_u16 = np.rint(frac * SCALE).astype(np.uint16)
        frac_u16[:, mat >= _WATER] = COVER_NODATA
        frac_out[:, b0:b1, :] = frac_u16
        tex_rng = np.random.default_rng([scene_seed, 202, b0])
        amp = np.where((mat == _WATER) | (mat >= _TWHITE), np.float32(0.005), np.float32(grain))
        tex = 1.0 + amp * tex_rng.standard_normal(mat.shape, dtype=np.float32)
        out *= tex[..., None]
        refl[:, b0:b1, :] = np.clip(np.rint(out * SCALE), 1, 65535).astype(np.uint16).transpose(2, 0, 1)
        cov = _MATERIAL_COVER[mat]
        cover_out[b0:b1] = np.where(past & (c < 0.08), Cover.BARE, cov)
    return Truth(reflectance=refl, landcover=cover_out, geobox=geobox, cover=frac_out)
