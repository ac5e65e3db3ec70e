"""Candidate pairs from footprint overlap (shapely STRtree, never all pairs) and their matching
(Lowe ratio test + a RANSAC homography), and the graph of matched pairs (blocks)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import dask
import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components
from shapely import STRtree
from shapely.geometry.base import BaseGeometry

from belcheer.orthomosaic.features import Features
from belcheer.scheduler import compute


@dataclass(frozen=True)
class PairMatch:
    """Inlier matches between captures ``i`` and ``j`` (indices into the capture list).

    ``pi``/``pj`` are (N, 2) full-resolution pixels; ``candidates`` the ratio-test survivors.
    """

    i: int
    j: int
    pi: np.ndarray
    pj: np.ndarray
    candidates: int

    @property
    def inliers(self) -> int:
        return len(self.pi)


def candidate_pairs(footprints: Sequence[BaseGeometry | None], min_overlap: float = 0.05,
                    always: Sequence[int] = (), max_neighbours: int | None = 12) -> list[tuple[int, int]]:
    """Index pairs whose footprints overlap by at least ``min_overlap`` of the smaller one.

    Each capture keeps its ``max_neighbours`` largest overlaps (a pair stays when it is among
    either end's), so the number of pairs — and the matching and adjustment work — grows
    linearly with the survey, not with its overlap. Captures listed in ``always`` (no
    footprint: no GPS) are paired with every other capture.
    """
    idx = [k for k, g in enumerate(footprints) if g is not None and not g.is_empty]
    geoms = [footprints[k] for k in idx]
    tree = STRtree(geoms)
    overlap: dict[tuple[int, int], float] = {}
    for a_pos, b_pos in zip(*tree.query(geoms, predicate="intersects"), strict=True):
        a, b = idx[int(a_pos)], idx[int(b_pos)]
        if a >= b:
            continue
        ga, gb = footprints[a], footprints[b]
        frac = ga.intersection(gb).area / min(ga.area, gb.area)
        if frac >= min_overlap:
            overlap[(a, b)] = frac
    pairs: set[tuple[int, int]] = set(overlap)
    if max_neighbours is not None:
        ranked: dict[int, list[tuple[float, tuple[int, int]]]] = {}
        for pair, frac in overlap.items():
            for k in pair:
                ranked.setdefault(k, []).append((frac, pair))
        pairs = {pair for lst in ranked.values() for _, pair in sorted(lst, reverse=True)[:max_neighbours]}
    for k in always:
        for m in range(len(footprints)):
            if m != k:
                pairs.add((min(k, m), max(k, m)))
    return sorted(pairs)


#: Lowe's ratio, USAC threshold (px of the decimated feature image), inliers kept per pair
RATIO, RANSAC_PX, MAX_MATCHES = 0.8, 1.5, 120


def _flann_index(features: Features, seed: int) -> cv2.flann_Index:
    """A FLANN k-d forest over one capture's descriptors. Its randomised trees draw from
    OpenCV's RNG: seeded, so a survey mosaics the same way every run (the RNG is per thread,
    so parallel matching stays reproducible)."""
    cv2.setRNGSeed(seed)
    return cv2.flann_Index(features.descriptors, {"algorithm": 1, "trees": 4})


def _match_to_index(fa: Features, fb: Features, index_b: cv2.flann_Index, i: int, j: int,
                    ratio: float = RATIO, ransac_px: float = RANSAC_PX,
                    max_matches: int = MAX_MATCHES, seed: int = 0) -> PairMatch:
    empty = PairMatch(i, j, np.zeros((0, 2)), np.zeros((0, 2)), 0)
    if len(fa.points) < 8 or len(fb.points) < 8:
        return empty
    nn, dist2 = index_b.knnSearch(fa.descriptors, 2, params={"checks": 32})
    dist = np.sqrt(np.maximum(dist2, 0.0))
    good = np.flatnonzero(dist[:, 0] < ratio * dist[:, 1])
    # one match per keypoint of b, its nearest query: against a frame of faint, noise-like
    # descriptors (low-contrast ground) the ratio test passes whole crowds of queries onto
    # its few distinct keypoints (a target, a stone), which USAC then fits as "inliers"
    order = good[np.argsort(dist[good, 0], kind="stable")]
    good = np.sort(order[np.unique(nn[order, 0], return_index=True)[1]])
    if len(good) < 12:
        return PairMatch(i, j, np.zeros((0, 2)), np.zeros((0, 2)), len(good))
    pa = fa.points[good]
    pb = fb.points[nn[good, 0]]
    thresh = ransac_px * max(fa.quality.get("factor", 1.0), 1.0)
    try:
        fmat, mask = cv2.findFundamentalMat(pa, pb, cv2.USAC_MAGSAC, thresh, 0.999, 10000)
    except cv2.error:
        # degenerate correspondences (all on a line, or one textureless spot: water) give
        # USAC no model at all; such a pair simply has no verified match
        fmat, mask = None, None
    if fmat is None or mask is None:
        return PairMatch(i, j, np.zeros((0, 2)), np.zeros((0, 2)), len(good))
    inl = mask.ravel().astype(bool)
    pa, pb = pa[inl], pb[inl]
    if len(pa) > max_matches:
        keep = np.random.default_rng(seed + 7919 * i + j).choice(len(pa), max_matches, replace=False)
        pa, pb = pa[np.sort(keep)], pb[np.sort(keep)]
    return PairMatch(i, j, pa, pb, len(good))


def match_pair(fa: Features, fb: Features, i: int, j: int, ratio: float = RATIO,
               ransac_px: float = RANSAC_PX, max_matches: int = MAX_MATCHES, seed: int = 0) -> PairMatch:
    """Match two captures' features: FLANN k-NN, Lowe's ratio test, USAC (MAGSAC) inliers.

    The RANSAC model is the fundamental matrix, not a homography: at survey heights of 40–120 m
    trees and buildings break the planar assumption and a homography rejects their true matches.

    ``ransac_px`` is in decimated pixels of the feature image (scaled internally). At most
    ``max_matches`` inliers are kept (a deterministic random subset) to bound the adjustment.
    """
    if len(fa.points) < 8 or len(fb.points) < 8:
        return PairMatch(i, j, np.zeros((0, 2)), np.zeros((0, 2)), 0)
    return _match_to_index(fa, fb, _flann_index(fb, j), i, j, ratio, ransac_px, max_matches, seed)


def _match_frame(fb: Features, j: int, partners: Sequence[tuple[int, Features]]) -> list[PairMatch]:
    """Every pair (i, j) of ``partners`` against one index of capture ``j``'s descriptors."""
    if len(fb.points) < 8:
        return [match_pair(fa, fb, i, j) for i, fa in partners]
    index = _flann_index(fb, j)
    return [_match_to_index(fa, fb, index, i, j) for i, fa in partners]


def match_all(features: Sequence[Features], pairs: Sequence[tuple[int, int]], *,
              scheduler: str | None = None) -> list[PairMatch]:
    """:func:`match_pair` over candidate pairs, in parallel through Dask: one task per capture,
    whose descriptor index is built once for all of its pairs (each task gets only the
    features it needs, so a distributed cluster is not sent the whole survey per task)."""
    partners: dict[int, list[int]] = {}
    for i, j in pairs:
        partners.setdefault(j, []).append(i)
    tasks = [dask.delayed(_match_frame)(features[j], j, [(i, features[i]) for i in ps])
             for j, ps in partners.items()]
    found = {(m.i, m.j): m for group in (compute(*tasks, scheduler=scheduler) if tasks else [])
             for m in group}
    return [found[p] for p in pairs]


def blocks(n: int, matches: Sequence[PairMatch], min_inliers: int = 20) -> list[list[int]]:
    """Connected components of the graph of pairs with at least ``min_inliers`` inliers,
    largest first."""
    good = [m for m in matches if m.inliers >= min_inliers]
    rows = [m.i for m in good]
    cols = [m.j for m in good]
    graph = coo_matrix((np.ones(len(rows)), (rows, cols)), shape=(n, n))
    _, labels = connected_components(graph, directed=False)
    comps: dict[int, list[int]] = {}
    for k, lab in enumerate(labels):
        comps.setdefault(int(lab), []).append(k)
    return sorted(comps.values(), key=len, reverse=True)
