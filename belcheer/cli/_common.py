"""Helpers shared by the CLI command modules: workspace, JSON output and the progress bar."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from belcheer.config import Settings
from belcheer.log import configure_logging
from belcheer.progress import ProgressCallback
from belcheer.workspace import Workspace, open_workspace

out = Console(highlight=False)
err = Console(stderr=True, highlight=False)


@dataclass
class _State:
    workspace: str | None = None
    verbose: bool = False


STATE = _State()


def settings() -> Settings:
    s = Settings()
    if STATE.workspace:
        s = s.model_copy(update={"workspace": STATE.workspace})
    configure_logging("DEBUG" if STATE.verbose else s.log_level)
    return s


def workspace() -> Workspace:
    s = settings()
    return open_workspace(s.workspace, s)


def print_json(obj: Any) -> None:
    """Print JSON to stdout (plain print, so pipes get exactly the JSON and nothing else)."""
    print(json.dumps(obj, ensure_ascii=False, indent=2, default=str))


@contextmanager
def progress_bar(enabled: bool = True) -> Iterator[ProgressCallback]:
    """A rich progress bar on stderr, handed to stages as a :data:`ProgressCallback`."""
    if not enabled or not err.is_terminal:
        yield lambda fraction, message: None
        return
    with Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.percentage:>3.0f}%"),
                  TimeElapsedColumn(), console=err, transient=True) as bar:
        task = bar.add_task("starting", total=1.0)

        def cb(fraction: float, message: str) -> None:
            bar.update(task, completed=fraction, description=message)

        yield cb
