"""XMP packets: find them cheaply and flatten them into ``{"Prefix:Name": value}``.

Cameras write XMP in two places: JPEGs in an APP1 segment near the start of the file (DJI puts
it after the EXIF thumbnail, ≈ 50 KB in), TIFFs in tag 700, which MicaSense and Parrot write
*after* the pixel data, near the end of a 2.4 MB file. :func:`find_packet` therefore searches
the first :data:`HEAD_BYTES` of a JPEG and follows tag 700 of a TIFF (the caller hands it in).

Parsing goes through ``defusedxml`` with DTDs forbidden: no camera writes a DOCTYPE, so a packet
that carries one (an entity bomb, an external entity) is refused as :class:`UnsafeXMPError`.
Keys use the prefixes the packet itself declares (``Camera:``, ``DLS:``, ``MicaSense:``,
``drone-dji:``) because vendors use several URIs for the same prefix (``http://pix4d.com/1.0``,
``http://pix4d.com/camera/1.0/``).
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from typing import Any, BinaryIO

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import iterparse

#: how much of a JPEG to search for the XMP packet
HEAD_BYTES = 128 * 1024
#: never read more than this for one packet (a packet this big is not camera metadata)
MAX_PACKET_BYTES = 2 * 1024 * 1024

_RDF = "http://www.w3.org/1999/02/22-rdf-syntax-ns#"
_OPEN, _CLOSE = b"<x:xmpmeta", b"</x:xmpmeta>"


class UnsafeXMPError(ValueError):
    """The XMP packet declares a DTD or entities (XML bomb, external entity): refused."""


class BadXMPError(ValueError):
    """The XMP packet is not well-formed XML."""


def _packet_start(data: bytes, start: int) -> int:
    """Move the start back over a DOCTYPE declared before the packet, so the parser sees (and
    refuses) it instead of the slice silently dropping it."""
    doctype = data.rfind(b"<!DOCTYPE", max(0, start - 65536), start)
    return doctype if doctype >= 0 else start


def find_packet(fh: BinaryIO, *, head: bytes | None = None) -> bytes | None:
    """The ``<x:xmpmeta>…</x:xmpmeta>`` bytes within the first :data:`HEAD_BYTES` of ``fh``
    (continuing past that window only to find the end of a packet that starts inside it)."""
    if head is None:
        fh.seek(0)
        head = fh.read(HEAD_BYTES)
    start = head.find(_OPEN)
    if start < 0:
        return None
    end = head.find(_CLOSE, start)
    start = _packet_start(head, start)
    if end >= 0:
        return head[start:end + len(_CLOSE)]
    fh.seek(start)
    data = fh.read(MAX_PACKET_BYTES)
    end = data.find(_CLOSE)
    return data[:end + len(_CLOSE)] if end >= 0 else None


_XMP_APP1 = b"http://ns.adobe.com/xap/1.0/\x00"


def jpeg_packet(fh: BinaryIO) -> bytes | None:
    """The XMP packet of a JPEG found by walking its marker segments up to the image data.

    For files whose XMP sits beyond :data:`HEAD_BYTES` behind large APPn segments (ICC profiles,
    thermal or depth data): each segment header is read, not its payload."""
    fh.seek(2)
    while True:
        marker = fh.read(4)
        if len(marker) < 4 or marker[0] != 0xFF:
            return None
        kind, length = marker[1], int.from_bytes(marker[2:4], "big")
        if kind in (0xD9, 0xDA) or length < 2:  # end of image, start of scan
            return None
        if kind == 0xE1 and length - 2 > len(_XMP_APP1):
            if fh.read(len(_XMP_APP1)) == _XMP_APP1:
                return packet_from_tag(fh.read(length - 2 - len(_XMP_APP1)))
            fh.seek(length - 2 - len(_XMP_APP1), 1)
        else:
            fh.seek(length - 2, 1)


def packet_from_tag(value: bytes | str | None) -> bytes | None:
    """The ``<x:xmpmeta>`` packet inside a TIFF tag-700 value (may carry an ``<?xpacket`` wrapper)."""
    if value is None:
        return None
    data = value.encode("utf-8") if isinstance(value, str) else bytes(value)
    start = data.find(_OPEN)
    end = data.find(_CLOSE, start)
    if start < 0 or end < 0:
        return None
    return data[_packet_start(data, start):end + len(_CLOSE)]


def _local(tag: str) -> tuple[str, str]:
    if tag.startswith("{"):
        uri, name = tag[1:].split("}", 1)
        return uri, name
    return "", tag


def _key(tag: str, prefixes: Mapping[str, str]) -> str:
    uri, name = _local(tag)
    prefix = prefixes.get(uri) or uri.rstrip("/").rsplit("/", 1)[-1]
    return f"{prefix}:{name}" if prefix else name


def _value(elem: Any) -> Any:
    for container in ("Seq", "Bag", "Alt"):
        seq = elem.find(f"{{{_RDF}}}{container}")
        if seq is not None:
            return [(li.text or "").strip() for li in seq.findall(f"{{{_RDF}}}li")]
    return (elem.text or "").strip()


def parse_packet(packet: bytes) -> dict[str, Any]:
    """Flatten an XMP packet: attributes and simple elements of every ``rdf:Description`` become
    ``"Prefix:Name": str``; ``rdf:Seq``/``Bag``/``Alt`` become lists of strings.

    Raises :class:`UnsafeXMPError` for DTDs/entities and :class:`BadXMPError` for broken XML.
    """
    prefixes: dict[str, str] = {}
    root = None
    try:
        for event, item in iterparse(io.BytesIO(packet), events=("start-ns", "start"),
                                     forbid_dtd=True, forbid_entities=True, forbid_external=True):
            if event == "start-ns":
                prefix, uri = item
                prefixes.setdefault(uri, prefix)
            elif root is None:
                root = item
    except DefusedXmlException as exc:
        raise UnsafeXMPError(f"XMP declares a DTD or entities ({type(exc).__name__})") from exc
    except Exception as exc:  # expat's ParseError and friends
        raise BadXMPError(f"XMP is not well-formed: {exc}") from exc
    out: dict[str, Any] = {}
    if root is None:
        return out
    for desc in root.iter(f"{{{_RDF}}}Description"):
        for name, val in desc.attrib.items():
            uri, _ = _local(name)
            if uri == _RDF:
                continue
            out[_key(name, prefixes)] = val.strip()
        for child in desc:
            uri, _ = _local(child.tag)
            if uri == _RDF:
                continue
            out[_key(child.tag, prefixes)] = _value(child)
    return out


def scalar(value: Any) -> Any:
    """A one-item list (Sequoia writes scalars as ``rdf:Seq``) as its item; other values as is."""
    if isinstance(value, list) and len(value) == 1:
        return value[0]
    return value


def number(value: Any) -> float | None:
    """A float from an XMP value (``"+39.80"``, ``["475"]``), or None if it is not one number."""
    value = scalar(value)
    if value is None or isinstance(value, list):
        return None
    try:
        out = float(str(value).strip())
    except ValueError:
        return None
    return out if out == out else None


def numbers(value: Any) -> tuple[float, ...] | None:
    """A tuple of floats from a list or a comma/space separated string; None if any is not a number."""
    if value is None:
        return None
    items = value if isinstance(value, list) else [value]
    parts: list[str] = []
    for item in items:
        parts.extend(p for p in str(item).replace(";", ",").replace(",", " ").split() if p)
    try:
        return tuple(float(p) for p in parts) or None
    except ValueError:
        return None
