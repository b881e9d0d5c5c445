"""The web address of the local run: ``HOST`` (default 127.0.0.1) and ``PORT`` (default 8000)
reach the Procfile's web process, and ``scripts/dev`` refuses a taken or impossible port, or
an impossible host, in one line before it starts anything."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _dev(port: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["scripts/dev"],
        cwd=ROOT,
        env={**os.environ, "PORT": port, **env},
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
    )


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_a_taken_port_stops_scripts_dev_in_one_line_before_anything_starts():
    with socket.socket() as other:
        other.bind(("127.0.0.1", 0))
        other.listen()
        port = other.getsockname()[1]
        result = _dev(str(port))
    assert result.returncode == 1
    assert result.stdout == ""  # no service started, nothing installed
    assert result.stderr.splitlines() == [
        f"notiflow: port {port} on 127.0.0.1 is taken by another program; "
        "stop it or run PORT=<another port> scripts/dev"
    ]


@pytest.mark.parametrize("value", ["web", "0", "65536", "80 80"])
def test_an_impossible_port_stops_scripts_dev_naming_it(value):
    result = _dev(value)
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr.splitlines() == [
        f"notiflow: PORT='{value}' must be a whole number from 1 to 65535"
    ]


@pytest.mark.parametrize("value", ["http://x", "a b", "-rf", "[::1]", "x" * 300])
def test_an_impossible_host_stops_scripts_dev_naming_it(value):
    result = _dev("8000", HOST=value)
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr.splitlines() == [
        f"notiflow: HOST='{value}' must be an IPv4 address or a host name (e.g. 127.0.0.1, 0.0.0.0)"
    ]


def test_a_taken_port_on_the_chosen_host_is_named_with_that_host():
    with socket.socket() as other:
        other.bind(("127.0.0.2", 0))
        other.listen()
        port = other.getsockname()[1]
        result = _dev(str(port), HOST="127.0.0.2")
    assert result.returncode == 1 and result.stdout == ""
    assert f"port {port} on 127.0.0.2 is taken" in result.stderr


@pytest.mark.parametrize("host", [None, "127.0.0.2"])
def test_the_procfile_web_process_listens_where_honcho_tells_it(tmp_path, host):
    """``scripts/dev`` runs ``honcho start -p $PORT`` with ``HOST`` exported; the web line
    must follow both."""
    port = _free_port()
    env = {**os.environ, "DATABASE_URL": f"sqlite:///{tmp_path / 'web.sqlite3'}"}
    env.pop("HOST", None)
    if host is not None:
        env |= {"HOST": host, "DJANGO_ALLOWED_HOSTS": host}
    address = host or "127.0.0.1"
    honcho = subprocess.Popen(
        [sys.executable, "-m", "honcho", "-f", "Procfile", "start", "-p", str(port), "web"],
        cwd=ROOT,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"http://{address}:{port}/api/docs/", timeout=5) as r:
                    assert r.status == 200
                    break
            except OSError:
                if honcho.poll() is not None or time.monotonic() > deadline:
                    raise
                time.sleep(0.2)  # the server is still starting; nothing else waits on it
    finally:
        os.killpg(honcho.pid, signal.SIGTERM)
        output = honcho.communicate(timeout=30)[0]
    assert f"Starting development server at http://{address}:{port}/" in output


def test_a_metrics_port_that_is_the_web_port_stops_scripts_dev_in_one_line():
    """Both are free before anything starts, so the taken-port check passes them; then the
    web and the consumer would bind the same port and the run would stop as soon as it began."""
    port = str(_free_port())
    result = _dev(port, NOTIFLOW_CONSUMER_METRICS_PORT=port)
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr.splitlines() == [
        f"notiflow: NOTIFLOW_CONSUMER_METRICS_PORT={port} is the web's PORT; "
        "pick another, or 0 for none"
    ]
