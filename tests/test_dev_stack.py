"""`deeployd dev`: the whole stack on embedded defaults, stopped cleanly by Ctrl-C, data reused."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import IO

import httpx
import psutil

from deeployd.devstack import free_port
from tests.agent_support import scripted_agent

KEY = "dk_test-bootstrap-key-0123456789abcdef"


def start_dev(
    data_dir: Path, ports: dict[str, int], stderr: IO[str] | None = None
) -> tuple[subprocess.Popen[str], list[str]]:
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
        stderr=stderr or subprocess.DEVNULL,
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


def child_pid(parent: int, marker: str, *, other_than: int = 0, timeout: float = 60) -> int:
    """The PID of `parent`'s live child process whose command line contains `marker`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for child in psutil.Process(parent).children():
            try:
                if (
                    child.pid != other_than
                    and marker in " ".join(child.cmdline())
                    and child.status() != psutil.STATUS_ZOMBIE
                ):
                    return child.pid
            except psutil.NoSuchProcess:
                pass
        time.sleep(0.2)
    raise AssertionError(f"no child of {parent} runs {marker!r}")


def answered_by_an_agent(api: str, auth: dict[str, str]) -> str:
    agent = httpx.post(
        f"{api}/api/agents", headers=auth, json=scripted_agent([{"text": "still here"}])
    )
    assert agent.status_code == 201, agent.text
    agent_id = agent.json()["id"]
    conversation = httpx.post(
        f"{api}/api/conversations", headers=auth, json={"agentId": agent_id}
    ).json()
    answer = httpx.post(
        f"{api}/api/conversations/{conversation['id']}/messages?wait=true",
        headers=auth,
        json={"content": "hello"},
        timeout=90,
    )
    assert answer.status_code == 200, answer.text
    return str(answer.json()["status"])


def wait_until_serving(api: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{api}/healthz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise AssertionError("the API did not come back")


def test_dev_restarts_a_killed_worker_and_api_and_keeps_serving(tmp_path: Path) -> None:
    ports = {"api": free_port(), "temporal": free_port(), "ui": free_port()}
    log_path = tmp_path / "dev.stderr"
    with log_path.open("w") as stderr:
        process, _ = start_dev(tmp_path / "data", ports, stderr)
    api = f"http://127.0.0.1:{ports['api']}"
    auth = {"Authorization": f"Bearer {KEY}"}
    try:
        first_worker = child_pid(process.pid, "-m worker")
        os.kill(first_worker, signal.SIGKILL)
        child_pid(process.pid, "-m worker", other_than=first_worker)
        assert process.poll() is None  # the stack did not stop
        # The new worker runs a conversation to the end.
        assert answered_by_an_agent(api, auth) == "completed"

        first_api = child_pid(process.pid, "deeployd.cli api")
        os.kill(first_api, signal.SIGKILL)
        child_pid(process.pid, "deeployd.cli api", other_than=first_api)
        wait_until_serving(api)
        assert httpx.get(f"{api}/api/me", headers=auth).json()["orgName"] == "default"

        # The embedded PostgreSQL is started again on the same data.
        postmaster = int((tmp_path / "data" / "pg" / "postmaster.pid").read_text().split()[0])
        os.kill(postmaster, signal.SIGKILL)
        deadline = time.monotonic() + 60
        while "PostgreSQL restarted" not in log_path.read_text():
            assert time.monotonic() < deadline, "PostgreSQL was not restarted"
            time.sleep(0.2)
        wait_until_serving(api)
        assert httpx.get(f"{api}/api/secrets", headers=auth).status_code == 200
        assert process.poll() is None
    finally:
        code = stop_with_ctrl_c(process)
    assert code == 0
    assert not any(listening(p) for p in ports.values())
    events = log_path.read_text()
    assert "worker exited with code -9; restarting it" in events
    assert "api exited with code -9; restarting it" in events
    assert "worker restarted" in events and "api restarted" in events
    assert "PostgreSQL stopped; restarting it" in events and "PostgreSQL restarted" in events
