"""Small tables of what cameras do not write in their headers: sensor sizes and band roles.

Sensor sizes are the physical active area in millimetres (width × height of the full 4:3 or 3:2
frame). They are used only when EXIF lacks ``FocalPlaneXResolution``; a 16:9 frame (Phantom 3
video-ratio stills) is a crop of the full width, so pixel pitch = sensor width / image width.
"""

from __future__ import annotations

import re

#: camera model (EXIF ``Model``, upper-case, prefix match) → sensor (width_mm, height_mm)
SENSOR_MM: dict[str, tuple[float, float]] = {
    # DJI 1/2.3" bodies: Phantom 3 (FC300S/X/C), Phantom 4 (FC330), Mavic Pro (FC220), Mini 2
    "FC300": (6.17, 4.55),
    "FC330": (6.17, 4.55),
    "FC220": (6.17, 4.55),
    "FC7303": (6.17, 4.55),
    # DJI 1" bodies: Phantom 4 Pro / Advanced / RTK (FC6310, FC6310R, FC6310S), Mavic 2 Pro
    "FC6310": (13.2, 8.8),
    "FC6510": (13.2, 8.8),
    "L1D-20C": (13.2, 8.8),
    # MicaSense 1.2 MP band cameras (3.75 µm pixels, 5.4–5.5 mm lens)
    "REDEDGE": (4.8, 3.6),
    # MicaSense Altum multispectral bands (3.45 µm, 2064 × 1544)
    "ALTUM": (7.12, 5.33),
    # Parrot Sequoia: the band cameras (1280 × 960 at 3.75 µm); its RGB is 1/2.3"
    "SEQUOIA": (4.8, 3.6),
}

#: Sequoia's RGB camera differs from its band cameras
SEQUOIA_RGB_MM: tuple[float, float] = (6.17, 4.55)

#: camera model (prefix, as :data:`SENSOR_MM`) → native full-frame size (width_px, height_px): no
#: frame from that camera can be larger, so a bigger header is a forgery or a decompression bomb
SENSOR_PX: dict[str, tuple[int, int]] = {
    "FC300": (4000, 3000), "FC330": (4000, 3000), "FC220": (4000, 3000), "FC7303": (4000, 3000),
    "FC6310": (5472, 3648), "FC6510": (5472, 3648), "L1D-20C": (5472, 3648),
    "REDEDGE": (1280, 960), "ALTUM": (2064, 1544), "SEQUOIA": (1280, 960),
}
SEQUOIA_RGB_PX: tuple[int, int] = (4608, 3456)

#: nominal centre wavelengths (nm) of the broad RGB channels, for RGB products
RGB_CENTRES_NM: dict[str, float] = {"red": 650.0, "green": 550.0, "blue": 470.0}

#: Parrot Sequoia file suffix → (canonical band, band index, nominal centre nm)
SEQUOIA_SUFFIX: dict[str, tuple[str, int, float | None]] = {
    "GRE": ("green", 1, 550.0), "RED": ("red", 2, 660.0), "REG": ("rededge", 3, 735.0),
    "NIR": ("nir", 4, 790.0), "RGB": ("rgb", 5, None),
}

#: DJI Mavic 3 Multispectral file suffix → (canonical band, band index, nominal centre nm)
MAVIC3M_SUFFIX: dict[str, tuple[str, int, float | None]] = {
    "D": ("rgb", 0, None), "MS_G": ("green", 1, 560.0), "MS_R": ("red", 2, 650.0),
    "MS_RE": ("rededge", 3, 730.0), "MS_NIR": ("nir", 4, 860.0),
}

#: DJI Phantom 4 Multispectral: the last digit of DJI_xxxN.TIF → (band, nominal centre nm)
P4M_DIGIT: dict[int, tuple[str, float]] = {
    1: ("blue", 450.0), 2: ("green", 560.0), 3: ("red", 650.0), 4: ("rededge", 730.0), 5: ("nir", 840.0),
}

#: MicaSense band number → (band, nominal centre nm) when XMP is missing (RedEdge order)
MICASENSE_NUMBER: dict[int, tuple[str, float]] = {
    1: ("blue", 475.0), 2: ("green", 560.0), 3: ("red", 668.0), 4: ("nir", 840.0), 5: ("rededge", 717.0),
    6: ("lwir", 11000.0),
}


def sensor_size_mm(model: str, *, rgb: bool = False) -> tuple[float, float] | None:
    """Physical sensor size (mm) of a camera model from :data:`SENSOR_MM`, or None if unknown."""
    key = model.strip().upper()
    if key.startswith("SEQUOIA") and rgb:
        return SEQUOIA_RGB_MM
    for prefix, size in SENSOR_MM.items():
        if key.startswith(prefix):
            return size
    return None


def native_size_px(model: str, *, rgb: bool = False) -> tuple[int, int] | None:
    """Full-frame size (width, height) in pixels of a camera model from :data:`SENSOR_PX`, or None."""
    key = model.strip().upper()
    if key.startswith("SEQUOIA") and rgb:
        return SEQUOIA_RGB_PX
    for prefix, size in SENSOR_PX.items():
        if key.startswith(prefix):
            return size
    return None


def band_role(label: str | None, center_nm: float | None = None) -> str | None:
    """Canonical band name (blue, green, red, rededge, nir, lwir, pan) from a camera's label
    ("Red edge", "RedEdge-717", "NIR", "Panchro") or, failing that, its centre wavelength (nm)."""
    if label:
        key = re.sub(r"[^a-z]", "", label.lower())
        for prefix, role in (("rededge", "rededge"), ("re", "rededge"), ("nir", "nir"),
                             ("nearinfrared", "nir"), ("lwir", "lwir"), ("thermal", "lwir"),
                             ("panchro", "pan"), ("pan", "pan"), ("blue", "blue"),
                             ("green", "green"), ("red", "red")):
            if key == prefix or (len(prefix) > 2 and key.startswith(prefix)):
                return role
    if center_nm is not None:
        return wavelength_role(center_nm)
    return None


def wavelength_role(center_nm: float) -> str:
    """Canonical band name of a centre wavelength in nanometres."""
    if center_nm < 500:
        return "blue"
    if center_nm < 600:
        return "green"
    if center_nm < 690:
        return "red"
    if center_nm < 760:
        return "rededge"
    if center_nm < 1100:
        return "nir"
    return "lwir"
