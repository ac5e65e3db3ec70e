"""The `belcheer users` commands (the `serve` command itself runs uvicorn: covered by the browser test)."""

from __future__ import annotations

import json

from fastapi.testclient import TestClient

from belcheer.api import create_app
from belcheer.cli import main
from belcheer.config import Settings


def test_users_add_list_and_sign_in(tmp_path, capsys, monkeypatch):
    ws = tmp_path / "ws"
    monkeypatch.setattr("sys.stdin", __import__("io").StringIO("s3cret-pass-word\n"))
    assert main(["--workspace", str(ws), "users", "add", "dulmaa", "--role", "officer", "--soum", "Батсүмбэр",
                 "--password-stdin"]) == 0
    added = json.loads(capsys.readouterr().out)
    assert added == {"username": "dulmaa", "role": "officer", "soum": "Батсүмбэр", "group": None}
    monkeypatch.setattr("sys.stdin", __import__("io").StringIO("s3cret-pass-word\n"))
    assert main(["--workspace", str(ws), "users", "add", "bad", "--role", "khan", "--password-stdin"]) == 3
    capsys.readouterr()
    assert main(["--workspace", str(ws), "users", "list"]) == 0
    users = json.loads(capsys.readouterr().out)
    assert [u["username"] for u in users] == ["dulmaa"] and "password_hash" not in users[0]
    with TestClient(create_app(Settings(workspace=ws))) as client:
        r = client.post("/token", data={"username": "dulmaa", "password": "s3cret-pass-word"})
        assert r.status_code == 200 and r.json()["role"] == "officer"
    # the generated signing secret stays private to the workspace owner
    assert (ws / "secret.key").stat().st_mode & 0o077 == 0


def test_a_wrong_command_or_option_is_a_usage_error_not_a_traceback(capsys):
    assert main(["nosuchcommand"]) == 2
    assert "No such command 'nosuchcommand'" in capsys.readouterr().err
    assert main(["run", "--no-such-option"]) == 2
    assert "No such option: --no-such-option" in capsys.readouterr().err
