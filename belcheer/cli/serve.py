"""`belcheer serve` (the web map and API), `belcheer worker` (pipeline jobs from the queue) and
`belcheer users add|list`."""

from __future__ import annotations

import sys

import typer

from belcheer.cli import _common


def register(app: typer.Typer) -> None:
    """Add `serve` and the `users` group to the main app."""

    @app.command()
    def serve(
        host: str = typer.Option("127.0.0.1", help="Address to listen on (0.0.0.0 for the network)."),
        port: int = typer.Option(8000, help="TCP port."),
    ) -> None:
        """Serve the web map, tiles, STAC, OGC API – Features, exports and jobs."""
        from belcheer.api import serve as run

        settings = _common.settings()
        _common.err.print(f"belcheer: http://{host}:{port}/  (herders: /herder, API docs: /docs)")
        run(settings, host=host, port=port)

    @app.command()
    def worker(
        slots: int = typer.Option(None, min=1, help="Jobs run at once (default BELCHEER_JOB_SLOTS, else 1)."),
        once: bool = typer.Option(False, "--once", help="Run the jobs in the queue, then exit."),
        poll: float = typer.Option(None, min=0.1, help="Seconds between looks at the queue "
                                                        "(default BELCHEER_JOB_POLL_S)."),
    ) -> None:
        """Run pipeline jobs from the catalog's queue, beside API servers or in their place.

        Any number of workers and API replicas may share one catalog (PostGIS for several
        machines): each job runs exactly once, and a job whose worker died is resumed by another
        from its last finished stage. SIGTERM or Ctrl-C puts the running job back in the queue."""
        import signal

        from belcheer.api.jobs import JobRunner

        settings = _common.settings()
        ws = _common.workspace()
        runner = JobRunner(ws, slots=slots or settings.job_slots or 1, heartbeat_s=settings.job_heartbeat_s,
                           stale_after_s=settings.job_stale_after_s)

        def _stop(signum: int, frame: object) -> None:
            runner.stop(requeue=True)

        signal.signal(signal.SIGTERM, _stop)
        signal.signal(signal.SIGINT, _stop)
        _common.err.print(f"belcheer worker {runner.worker}: catalog {ws.catalog!r}")
        runner.serve(poll or settings.job_poll_s, once=once)
        runner.close(requeue=True, timeout=max(30.0, settings.job_stale_after_s))

    users = typer.Typer(help="Manage the web users (roles: public, herder, officer, admin).",
                        no_args_is_help=True)

    @users.command("add")
    def users_add(
        name: str = typer.Argument(..., help="User name (no spaces)."),
        role: str = typer.Option(..., "--role", help="public | herder | officer | admin"),
        soum: str = typer.Option(None, "--soum", help="Soum an officer edits parcels of."),
        group: str = typer.Option(None, "--group", help="User group (khot ail) of a herder."),
        password_stdin: bool = typer.Option(False, "--password-stdin",
                                            help="Read the password from standard input."),
    ) -> None:
        """Create a user; the password is asked for (or read from stdin), stored argon2-hashed."""
        from belcheer.api.auth import add_user

        if password_stdin:
            password = sys.stdin.readline().rstrip("\r\n")
        else:
            password = typer.prompt("password", hide_input=True, confirmation_prompt=True)
        user = add_user(_common.workspace(), name, password, role, soum, group)
        _common.print_json({"username": user.username, "role": user.role, "soum": user.soum,
                            "group": user.group})

    @users.command("list")
    def users_list() -> None:
        """List users (name, role, soum, group) as JSON."""
        rows = _common.workspace().catalog.users()
        _common.print_json([{k: v for k, v in r.items() if k != "password_hash"} for r in rows])

    app.add_typer(users, name="users")
