"""A real ComfyUI for tests: start it headless on the CPU with this pack, plus HTTP helpers.

Used by ``tests/test_comfyui_integration.py`` and ``tests/test_web_browser.py``
(both skipped unless ``COMFYUI_PATH`` points to a ComfyUI checkout). ComfyUI runs
with ``--cpu`` on 127.0.0.1 and a free port, a temporary ``--base-directory``
whose ``custom_nodes/tempomaster`` is a symlink to this repository, an in-memory
database, no auto-launch and no API nodes; it is stopped (its whole process
group) when the ``with`` block ends.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Optional, Sequence

import pytest

COMFYUI_PATH = os.environ.get("COMFYUI_PATH")
ROOT = Path(__file__).resolve().parents[1]
START_TIMEOUT_S = 240


def comfyui_available() -> bool:
    """True when ``COMFYUI_PATH`` names a ComfyUI checkout (its ``main.py`` exists)."""
    return bool(COMFYUI_PATH) and os.path.isfile(os.path.join(COMFYUI_PATH, "main.py"))


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def http_get(url: str, timeout: float = 30) -> tuple[int, bytes]:
    """``(status, body)`` of a GET (raises ``urllib.error.HTTPError`` for 4xx/5xx)."""
    with urllib.request.urlopen(url, timeout=timeout) as resp:
        return resp.status, resp.read()


def post_json(url: str, payload: dict, timeout: float = 30) -> tuple[int, dict]:
    """``(status, JSON body)`` of a POST with a JSON body; 4xx/5xx answers are returned, not raised."""
    req = urllib.request.Request(url, data=json.dumps(payload).encode(), headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            body = resp.read()
            return resp.status, json.loads(body) if body.strip() else {}
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read() or b"{}")


def link_pack(base: Path) -> Path:
    """Create ``base/custom_nodes/tempomaster`` -> this repository; returns ``base/custom_nodes``."""
    custom = Path(base) / "custom_nodes"
    custom.mkdir(parents=True, exist_ok=True)
    (custom / "tempomaster").symlink_to(ROOT, target_is_directory=True)
    return custom


@contextmanager
def running_comfyui(base: Path, *, env: Optional[dict] = None, extra_args: Sequence[str] = (),
                    start_timeout: float = START_TIMEOUT_S) -> Iterator[tuple[str, Path]]:
    """Run ComfyUI on ``base`` (which must already hold ``custom_nodes``); yields ``(url, log_path)``.

    Waits until ``/object_info/TempoMasterTreeScheduler`` answers (our pack loaded).
    Fails the test (``pytest.fail``, with the end of ComfyUI's log) when ComfyUI exits or
    does not start in ``start_timeout`` seconds.
    """
    base = Path(base)
    port = free_port()
    log_path = base / "comfyui.log"
    cmd = [sys.executable, "main.py", "--cpu", "--listen", "127.0.0.1", "--port", str(port),
           "--base-directory", str(base), "--disable-auto-launch", "--database-url", "sqlite:///:memory:",
           "--disable-api-nodes", *extra_args]
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(cmd, cwd=COMFYUI_PATH, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                                env=env if env is not None else dict(os.environ))
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + start_timeout
        while True:
            if proc.poll() is not None:
                pytest.fail(f"ComfyUI exited with {proc.returncode}:\n{log_path.read_text()[-4000:]}")
            try:
                if http_get(url + "/object_info/TempoMasterTreeScheduler", timeout=5)[0] == 200:
                    break
            except (urllib.error.URLError, ConnectionError, OSError):
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"ComfyUI did not start in {start_timeout} s:\n{log_path.read_text()[-4000:]}")
            time.sleep(1.0)
        yield url, log_path
    finally:
        stop_process_group(proc)


def stop_process_group(proc: subprocess.Popen) -> None:
    """SIGTERM the process group of ``proc`` (started with ``start_new_session``), SIGKILL after 20 s."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=20)
