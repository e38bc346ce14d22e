"""The README's Quick start runs as written, from an empty directory.

The code blocks of the ``## Quick start`` section are extracted and run in order: the shell
block creates the workspace with the reference ``flightdeck`` CLI and starts ``flightdeck
serve``; the Python block talks to it. Three things differ from a person following the README,
and the test asserts each of them so a change to the README cannot slip past it:

* the ``pip install`` block is not run (the test environment has both packages; the test checks
  it names ``flightdeck-ai==1.3.0`` and that both are importable);
* ``flightdeck serve`` gets ``--port N`` with a free port (8765 may be taken on a test machine)
  and the Python block's ``http://127.0.0.1:8765`` becomes that address;
* the server runs in the background of the test instead of a terminal of its own.
"""

from __future__ import annotations

import importlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import REPO

pytestmark = pytest.mark.timeout(180)

README = REPO / "README.md"
DEFAULT_URL = "http://127.0.0.1:8765"
SERVE = "flightdeck serve"


def section(title: str) -> str:
    text = README.read_text(encoding="utf-8")
    match = re.search(rf"^## {re.escape(title)}\n(.*?)(?=^## )", text, re.S | re.M)
    assert match, f"README has no '## {title}' section"
    return match.group(1)


def code_blocks(text: str) -> list[tuple[str, str]]:
    """``(language, code)`` of each fenced block, in order."""
    return [
        (m.group(1), m.group(2)) for m in re.finditer(r"^```(\w*)\n(.*?)^```", text, re.S | re.M)
    ]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def venv_env() -> dict[str, str]:
    """The current interpreter's bin first on PATH (for ``flightdeck``), no FLIGHTDECK_*."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLIGHTDECK_")}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    return env


def wait_ready(url: str, proc: subprocess.Popen[bytes], log: Path, timeout_s: float = 60) -> None:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"the quick start shell block exited {proc.returncode}:\n{log.read_text()}")
        try:
            with opener.open(url + "/health", timeout=1.0) as resp:
                if resp.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.1)
    pytest.fail(f"flightdeck serve did not answer in {timeout_s} s:\n{log.read_text()}")


@pytest.fixture()
def blocks() -> list[tuple[str, str]]:
    found = code_blocks(section("Quick start"))
    assert [lang for lang, _ in found] == ["python", "sh", "sh", "python"], found
    return found


@pytest.fixture()
def quickstart_server(blocks: list[tuple[str, str]], tmp_path: Path) -> Iterator[str]:
    """Runs the workspace block (init, register, serve) in an empty directory."""
    if shutil.which("flightdeck", path=venv_env()["PATH"]) is None:
        pytest.fail("the reference `flightdeck` CLI is not installed next to the interpreter")
    script = blocks[2][1]
    lines = script.rstrip("\n").split("\n")
    assert lines[-1].startswith(SERVE + " "), "the block should end by starting the server"
    assert sum(SERVE in line for line in lines) == 1
    port = free_port()
    lines[-1] = f"exec {SERVE} --port {port}" + lines[-1][len(SERVE) :]
    log = tmp_path / "quickstart.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            ["bash", "-euo", "pipefail", "-c", "\n".join(lines)],
            cwd=tmp_path,
            env=venv_env(),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        url = f"http://127.0.0.1:{port}"
        try:
            wait_ready(url, proc, log)
            yield url
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait(timeout=15)
    # The workspace is where the README said, with the two registered releases in its ledger.
    workspace = tmp_path / "flightdeck-quickstart"
    assert (workspace / "flightdeck.yaml").is_file()
    assert (workspace / "v1.yaml").is_file() and (workspace / "v2.yaml").is_file()
    assert re.findall(r"^rel_\w+$", log.read_text(), re.M), log.read_text()


def test_install_block_names_both_packages(blocks: list[tuple[str, str]]) -> None:
    install = blocks[1][1]
    assert install.strip().startswith("pip install ")
    assert "flightdeck-ai==1.3.0" in install and "flightdeck_rs-" in install
    for module in ("flightdeck.sdk", "flightdeck_rs.sdk"):  # what the install provides
        importlib.import_module(module)


def test_switching_imports_block_runs(blocks: list[tuple[str, str]]) -> None:
    namespace: dict[str, object] = {}
    exec(compile(blocks[0][1], "README Quick start (imports)", "exec"), namespace)
    assert namespace["FlightdeckClient"].__module__.startswith("flightdeck_rs")  # type: ignore[union-attr]


def test_quickstart_runs_as_written(blocks: list[tuple[str, str]], quickstart_server: str) -> None:
    code = blocks[3][1]
    assert code.count(DEFAULT_URL) == 1
    done = subprocess.run(
        [sys.executable, "-c", code.replace(DEFAULT_URL, quickstart_server)],
        capture_output=True,
        text=True,
        timeout=120,
        env=venv_env(),
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    assert "'status': 'ok'" in out
    assert "100 events stored" in out
    # The bundled prices: gpt-4.1-mini 0.4 + 1.6 USD, gpt-4o 2.5 + 10 USD per 1k tokens.
    assert "cost per run: 1.12 USD -> 7.00 USD" in out, out
    # 50 runs a side is MEDIUM confidence; the workspace's default policy wants more evidence.
    assert "confidence: MEDIUM policy passed: False" in out, out
    assert "to production" in out and "first promotion" in out
