"""Generate the README's API reference from the public functions' signatures and docstrings.

``python -m belcheer.apidoc`` rewrites the block between ``<!-- section:apiref -->`` and
``<!-- /section:apiref -->`` in README.md; ``--check`` exits 1 when it is out of date (a test
runs that, so the reference cannot drift from the code).
"""

from __future__ import annotations

import importlib
import inspect
import re
import sys
from pathlib import Path

#: modules whose ``__all__`` is the public API, in pipeline order
MODULES: tuple[str, ...] = ("belcheer", "belcheer.ingest", "belcheer.simulate", "belcheer.orthomosaic",
                            "belcheer.indices", "belcheer.zoning", "belcheer.api")
#: methods of the notebook facade listed beside the modules
#: the notebook classes and the methods listed for each, with what returns them
FACADE = (("belcheer.facade.NotebookWorkspace", "`belcheer.open_workspace(path)`",
           ("survey", "parcels", "timeseries")),
          ("belcheer.facade.SurveyView", "`ws.survey(name)`",
           ("reflectance", "orthomosaic", "index", "stats", "products", "summary", "plot", "map")))
START, END = "<!-- section:apiref -->", "<!-- /section:apiref -->"


def _first_paragraph(obj: object) -> str:
    doc = inspect.getdoc(obj) or ""
    para = doc.split("\n\n", 1)[0]
    return " ".join(para.split())


def _signature(obj: object) -> str:
    try:
        sig = inspect.signature(obj)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return ""
    # pydantic-settings adds many private ``_env_…`` keywords: they are not ours to document
    sig = sig.replace(parameters=[p for p in sig.parameters.values() if not p.name.startswith("_")])
    return re.sub(r"\s+", " ", str(sig))


def _entry(qualname: str, obj: object) -> str:
    kind = "class " if inspect.isclass(obj) else ""
    sig = _signature(obj) if callable(obj) else ""
    summary = _first_paragraph(obj)
    line = f"- `{kind}{qualname}{sig}`"
    return f"{line}  \n  {summary}" if summary else line


def reference() -> str:
    """The API reference as Markdown."""
    out = ["## API reference", "",
           "Generated from the code by `python -m belcheer.apidoc` (docstrings state units and CRS).", ""]
    for name in MODULES:
        mod = importlib.import_module(name)
        out += [f"### `{name}`", ""]
        for attr in getattr(mod, "__all__", []):
            obj = getattr(mod, attr)
            if attr.startswith("__") or not (inspect.isfunction(obj) or inspect.isclass(obj)):
                continue
            out.append(_entry(f"{name}.{attr}", obj))
        out.append("")
    for cls_path, made_by, methods in FACADE:
        mod_name, cls_name = cls_path.rsplit(".", 1)
        cls = getattr(importlib.import_module(mod_name), cls_name)
        out += [f"### `{cls_path}` (what {made_by} returns)", ""]
        out += [_entry(f"{cls_name}.{m}", getattr(cls, m)) for m in methods]
        out.append("")
    return "\n".join(out)


def update(readme: Path, check: bool = False) -> bool:
    """Rewrite (or, with ``check``, compare) the README block. Returns True if it was current."""
    text = readme.read_text(encoding="utf-8")
    if START not in text or END not in text:
        raise SystemExit(f"{readme} has no {START} … {END} block")
    head, rest = text.split(START, 1)
    _, tail = rest.split(END, 1)
    new = f"{head}{START}\n{reference()}{END}{tail}"
    if new == text:
        return True
    if not check:
        readme.write_text(new, encoding="utf-8")
    return False


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    readme = Path(__file__).resolve().parents[1] / "README.md"
    current = update(readme, check="--check" in args)
    if "--check" in args and not current:
        print("README API reference is out of date: run `python -m belcheer.apidoc`", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
