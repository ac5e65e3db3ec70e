"""belcheer.ingest — frame headers (EXIF/XMP) → survey manifest + validation report.

``scan`` reads a folder (headers only, plus an optional decimated pixel check), groups frames
into captures, validates them, finds panel captures, picks the UTM zone and estimates footprints
and GSD; ``ingest`` saves the result into a workspace; ``summarize`` is the ``--json`` summary.
"""

from belcheer.ingest.scan import ingest, scan
from belcheer.ingest.summary import summarize

__all__ = ["scan", "summarize", "ingest"]
