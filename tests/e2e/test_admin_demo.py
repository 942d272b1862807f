"""The README's main command: ``jifen console --demo`` on a fresh directory, without Redis,
serves the console and every demo login works."""

from __future__ import annotations

import http.cookiejar
import os
import re
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

from admin.cli import DEMO_USERS


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _login(base: str, username: str, password: str) -> int:
    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
    page = opener.open(f"{base}/login").read().decode()
    token = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert token
    form = {"csrf_token": token.group(1), "username": username, "password": password}
    opener.open(f"{base}/login", urllib.parse.urlencode(form).encode())
    response = opener.open(f"{base}/admin/")
    assert response.url.endswith("/admin/"), f"{username} was not signed in"
    return int(response.status)


def test_demo_console_starts_without_redis_and_every_demo_login_works(tmp_path: Path) -> None:
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("JIFEN_")}
    process = subprocess.Popen(
        [sys.executable, "-m", "admin.cli", "console", "--demo", "--port", str(port)],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                urllib.request.urlopen(f"{base}/login", timeout=2)
                break
            except (urllib.error.URLError, ConnectionError):
                assert process.poll() is None, process.stdout.read() if process.stdout else ""
                assert time.monotonic() < deadline, "the demo console did not start in 2 minutes"
                time.sleep(0.5)
        for username, password, _role in DEMO_USERS:
            assert _login(base, username, password) == 200
    finally:
        process.terminate()
        output, _ = process.communicate(timeout=10)
    assert (tmp_path / "jifen-console-demo.db").exists()
    assert f"http://127.0.0.1:{port}/" in output
    for username, password, role in DEMO_USERS:
        assert username in output and password in output and role in output
