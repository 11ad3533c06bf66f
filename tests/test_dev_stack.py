"""`deeployd dev`: the whole stack on embedded defaults, stopped cleanly by Ctrl-C, data reused."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

from deeployd.devstack import free_port

KEY = "dk_test-bootstrap-key-0123456789abcdef"


def start_dev(data_dir: Path, ports: dict[str, int]) -> tuple[subprocess.Popen[str], list[str]]:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "TEMPORAL_ADDRESS")}
    env["DEEPLOYD_BOOTSTRAP_API_KEY"] = KEY
    env.pop("DEEPLOYD_ALLOW_PRIVATE_URLS", None)
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "deeployd.cli",
            "dev",
            "--data-dir",
            str(data_dir),
            "--api-port",
            str(ports["api"]),
            "--temporal-port",
            str(ports["temporal"]),
            "--ui-port",
            str(ports["ui"]),
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    banner: list[str] = []
    assert process.stdout is not None
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            break
        banner.append(line.rstrip())
        if "Press Ctrl-C" in line:
            return process, banner
    process.kill()
    raise AssertionError(f"deeployd dev did not come up: {banner}")


def listening(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def stop_with_ctrl_c(process: subprocess.Popen[str]) -> int:
    process.send_signal(signal.SIGINT)
    return process.wait(timeout=90)


def test_dev_starts_everything_prints_urls_and_stops_cleanly(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    ports = {"api": free_port(), "temporal": free_port(), "ui": free_port()}

    process, banner = start_dev(data_dir, ports)
    try:
        text = "\n".join(banner)
        assert f"http://localhost:{ports['api']}/docs" in text
        assert f"http://localhost:{ports['ui']}" in text
        assert KEY in text
        assert "Private URLs   allowed (DEEPLOYD_ALLOW_PRIVATE_URLS unset" in text
        api = f"http://127.0.0.1:{ports['api']}"
        auth = {"Authorization": f"Bearer {KEY}"}
        assert httpx.get(f"{api}/healthz").json()["status"] == "ok"
        assert httpx.get(f"{api}/api/me", headers=auth).json()["orgName"] == "default"
        saved = httpx.post(f"{api}/api/secrets", headers=auth, json={"name": "KEPT", "value": "v"})
        assert saved.status_code == 201
        assert httpx.get(f"http://127.0.0.1:{ports['ui']}/").status_code == 200
    finally:
        code = stop_with_ctrl_c(process)
    assert code == 0
    assert not any(listening(p) for p in ports.values())
    assert (data_dir / "temporal.db").exists() and (data_dir / "pg" / "PG_VERSION").exists()

    # A second start reuses the data.
    process, _ = start_dev(data_dir, ports)
    try:
        names = httpx.get(
            f"http://127.0.0.1:{ports['api']}/api/secrets",
            headers={"Authorization": f"Bearer {KEY}"},
        ).json()
        assert [s["name"] for s in names] == ["KEPT"]
    finally:
        assert stop_with_ctrl_c(process) == 0
    assert not any(listening(p) for p in ports.values())


def test_the_private_urls_notice_says_what_is_allowed_and_why() -> None:
    from deeployd.cli import private_urls_notice

    assert "allowed (DEEPLOYD_ALLOW_PRIVATE_URLS unset" in private_urls_notice(True, None)
    assert "refused (DEEPLOYD_ALLOW_PRIVATE_URLS=false)" in private_urls_notice(False, "false")
