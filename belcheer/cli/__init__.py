"""The ``belcheer`` command line. Each command group lives in its own module and only calls the
stages' public functions; errors are mapped to exit codes here, in one place."""

from __future__ import annotations

import sys

import typer

from belcheer.cli import _common
from belcheer.errors import BelcheerError

app = typer.Typer(
    name="belcheer",
    help="belcheer (бэлчээр): drone frames → orthomosaic → indices → parcel statistics → web map.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


@app.callback()
def _root(
    workspace: str = typer.Option(None, "--workspace", "-w", envvar="BELCHEER_WORKSPACE",
                                  help="Workspace folder (default ./belcheer-data)."),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Log progress details."),
) -> None:
    _common.STATE.workspace = workspace
    _common.STATE.verbose = verbose


def _register() -> None:
    # each module adds its commands to ``app``; imported here so `belcheer --help` lists them all
    from belcheer.cli import indices, ingest, mosaic, pipeline, serve, simulate, zoning  # noqa: F401

    for mod in (simulate, ingest, mosaic, indices, zoning, serve, pipeline):
        mod.register(app)


_register()


def main(argv: list[str] | None = None) -> int:
    """Entry point of the console script: runs the app and maps belcheer errors to exit codes."""
    try:
        app(args=argv, standalone_mode=False)
    except BelcheerError as exc:
        _common.err.print(f"[bold red]error:[/] {exc}")
        return exc.exit_code
    except typer.Exit as exc:
        return int(exc.exit_code or 0)
    except typer.Abort:
        _common.err.print("aborted")
        return 130
    except Exception as exc:
        # click's usage errors carry their own exit code; typer may bring its own copy of click,
        # whose classes are not click's, so they are known by what they do
        if callable(getattr(exc, "show", None)) and isinstance(getattr(exc, "exit_code", None), int):
            exc.show()
            return exc.exit_code
        raise
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
