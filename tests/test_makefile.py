"""`make test` installs what the suite needs from Debian itself (not only .ci/run): the check is
instant when the packages are there, and names the packages when it cannot install them."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _make(*args: str, user: int | None = None) -> subprocess.CompletedProcess:
    cmd = ["make", "--no-print-directory", "-C", str(REPO), *args]
    if user is not None:
        cmd = ["setpriv", f"--reuid={user}", f"--regid={user}", "--clear-groups", *cmd]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=60,
                          env={**os.environ, "HOME": "/tmp"})


def test_test_target_depends_on_the_debian_check_and_ci_calls_make_test():
    makefile = (REPO / "Makefile").read_text()
    assert re.search(r"^test: install system-test$", makefile, re.M)
    debs = re.search(r"^TEST_DEBS := (.*)$", makefile, re.M)
    assert debs and {"chromium:chromium", "chromedriver:chromium-driver", "pdftoppm:poppler-utils"} <= set(debs[1].split())
    # the PostGIS catalog tests' server, detected by files (PostGIS has no command)
    assert re.search(r"^TEST_DEBS \+= .*/usr/share/postgresql/15/extension/postgis.control:"
                     r"postgresql-15-postgis-3\b", makefile, re.M)
    ci = (REPO / ".ci" / "run").read_text()
    assert re.search(r"^make test$", ci, re.M) and "apt-get" not in ci


def test_present_packages_cost_nothing():
    started = time.monotonic()
    done = _make("system-test", "TEST_DEBS=sh:dash env:coreutils /bin/sh:dash")
    assert done.returncode == 0, done.stderr
    assert time.monotonic() - started < 5
    assert "apt-get" not in done.stdout + done.stderr and "installing" not in done.stdout


@pytest.mark.skipif(os.geteuid() != 0 or shutil.which("setpriv") is None,
                    reason="needs root to run the check as another user")
def test_without_root_the_missing_packages_are_named():
    done = _make("system-test", "TEST_DEBS=sh:dash no-such-tool-1:pkg-one /no/such/file.control:pkg-two",
                 user=65534)
    assert done.returncode != 0
    assert "make system-test needs the Debian packages: pkg-one pkg-two" in done.stderr, done.stderr
    assert "sudo apt-get install pkg-one pkg-two" in done.stderr
    assert "dash" not in done.stderr
