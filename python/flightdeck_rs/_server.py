"""Launch a real ``flightdeck serve`` (from ``flightdeck-ai``) for tests and the demo.

The server is the reference implementation shipped by the ``flightdeck-ai`` package; this
module only drives its CLI: it creates a workspace, registers the two fixture releases that
ship with ``flightdeck_rs``, imports their pricing tables, sets the fixture policy and then
runs ``flightdeck serve`` on a free loopback port until ``GET /health`` answers.

The ledger is SQLite inside the workspace unless a PostgreSQL ``database_url`` is given, in
which case it is written to ``flightdeck.yaml`` right after ``flightdeck init`` and every later
step (release registration, pricing, policy, the server) uses that database. The server then
needs the ``psycopg`` driver: ``pip install 'flightdeck-ai[postgres]==1.3.0'``. Note that
flightdeck-ai 1.3.0 cannot migrate a fresh PostgreSQL database by itself (one of its tables has
a column named ``window``, a reserved word there); the test suite prepares the database first
(``PG_SCHEMA_WORKAROUND`` in ``tests/conftest.py``).

Only the standard library is used here, so the module can be imported without test
dependencies.

Example:
    >>> from flightdeck_rs._server import FlightdeckServer
    >>> with FlightdeckServer() as srv:  # doctest: +SKIP
    ...     print(srv.base_url, srv.baseline_id, srv.candidate_id)
"""

from __future__ import annotations

import json
import os
import pathlib
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from types import TracebackType
from typing import IO

__all__ = ["FIXTURES_DIR", "FlightdeckServer", "flightdeck_cli"]

#: Directory holding the release bundles, pricing tables and policy used by the launcher.
FIXTURES_DIR = pathlib.Path(__file__).resolve().parent / "_fixtures"

_TOKEN_ENV = "FLIGHTDECK_LOCAL_API_TOKEN"
_LOG_NAME = "flightdeck-serve.log"
_LOG_TAIL_CHARS = 4000
_POLL_INTERVAL_S = 0.05
_STOP_GRACE_S = 10.0
_PORT_ATTEMPTS = 3


def flightdeck_cli() -> list[str]:
    """Return the command prefix that runs the ``flightdeck`` CLI.

    The ``flightdeck`` script installed next to the running interpreter wins (so a virtual
    environment's CLI is used even when it is not on ``PATH``); otherwise ``PATH`` is searched.

    Returns:
        The argv prefix, e.g. ``["/venv/bin/flightdeck"]``.

    Raises:
        RuntimeError: If no ``flightdeck`` executable can be found.
    """
    bin_dir = pathlib.Path(sys.executable).parent
    for name in ("flightdeck", "flightdeck.exe"):
        candidate = bin_dir / name
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return [str(candidate)]
    found = shutil.which("flightdeck")
    if found:
        return [found]
    raise RuntimeError(
        "The `flightdeck` command-line tool was not found (looked next to "
        f"{sys.executable} and on PATH). It comes with the reference server package: "
        "pip install flightdeck-ai==1.3.0"
    )


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _tail(path: pathlib.Path, limit: int = _LOG_TAIL_CHARS) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return "<no server log>"
    return text[-limit:] if text else "<empty server log>"


class FlightdeckServer:
    """A ``flightdeck serve`` process in its own workspace, bound to ``127.0.0.1``.

    Attributes:
        base_url: ``"http://127.0.0.1:<port>"`` once started, ``""`` before.
        baseline_id: Release id of the fixture baseline release (``v1-baseline``).
        candidate_id: Release id of the fixture candidate release (``v2-candidate``).
        token: The API token the server requires, or ``None`` for loopback mode.
        workdir: The workspace directory (holds ``flightdeck.yaml``, the SQLite ledger and
            the server log).
        database_url: The PostgreSQL ledger's ``postgresql://`` URL, or ``None`` for SQLite.
        pid: PID of the server process while it runs, else ``None``.
    """

    def __init__(
        self,
        *,
        token: str | None = None,
        approval: bool = False,
        workdir: str | os.PathLike[str] | None = None,
        bundled_pricing: bool = False,
        database_url: str | None = None,
    ) -> None:
        """Configure (but do not start) a server.

        Args:
            token: Value for ``FLIGHTDECK_LOCAL_API_TOKEN`` (given to ``serve`` only); ``None``
                runs the server in loopback mode.
            approval: Set ``promotion_requires_approval: true`` in ``flightdeck.yaml``.
            workdir: Workspace directory; a temporary directory (removed by :meth:`stop`)
                is used when ``None``.
            bundled_pricing: Let ``flightdeck init`` import the bundled pricing catalog.
            database_url: ``postgresql://`` (or ``postgres://``) URL of an existing database to
                use as the ledger instead of SQLite. The server migrates its schema into it;
                the caller owns the database (it is neither created nor dropped here).

        Raises:
            ValueError: If ``database_url`` is not a PostgreSQL URL, or is combined with
                ``bundled_pricing`` (``flightdeck init`` imports the bundled catalog into the
                SQLite ledger before the URL can be written to ``flightdeck.yaml``).
        """
        if database_url is not None:
            if not database_url.startswith(("postgresql://", "postgres://")):
                raise ValueError(
                    f"database_url must start with postgresql:// or postgres://: {database_url!r}"
                )
            if bundled_pricing:
                raise ValueError("bundled_pricing=True is not supported with a database_url")
        self.token = token
        self.approval = approval
        self.bundled_pricing = bundled_pricing
        self.database_url = database_url
        self._owns_workdir = workdir is None
        self.workdir = pathlib.Path(workdir) if workdir is not None else pathlib.Path()
        self.base_url = ""
        self.port: int | None = None
        self.baseline_id = ""
        self.candidate_id = ""
        self.pid: int | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None
        self._workdir_created = False

    # ------------------------------------------------------------------ lifecycle

    def start(self, timeout_s: float = 30.0) -> FlightdeckServer:
        """Create the workspace, load the fixtures and serve until ``/health`` answers.

        Args:
            timeout_s: Upper bound for each CLI step and for the readiness wait.

        Returns:
            ``self``, so ``srv = FlightdeckServer().start()`` works.

        Raises:
            RuntimeError: If the CLI is missing, a CLI step fails or the server does not
                become ready in time (the message includes the tail of the server log).
        """
        if self._proc is not None:
            raise RuntimeError("FlightdeckServer is already running")
        cli = flightdeck_cli()
        if self._owns_workdir:
            self.workdir = pathlib.Path(tempfile.mkdtemp(prefix="flightdeck-rs-server-"))
            self._workdir_created = True
        else:
            self.workdir.mkdir(parents=True, exist_ok=True)
        try:
            self._prepare_workspace(cli, timeout_s)
            self._serve(cli, timeout_s)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Terminate the server (SIGTERM, then SIGKILL after a grace period).

        Safe to call more than once and on a server that never started. Removes the
        temporary workspace when the launcher created it.
        """
        proc, self._proc = self._proc, None
        if proc is not None:
            if proc.poll() is None:
                try:
                    os.kill(proc.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
                try:
                    proc.wait(timeout=_STOP_GRACE_S)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(timeout=_STOP_GRACE_S)
        self.pid = None
        if self._log is not None:
            self._log.close()
            self._log = None
        if self._workdir_created:
            shutil.rmtree(self.workdir, ignore_errors=True)
            self._workdir_created = False

    def __enter__(self) -> FlightdeckServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = f"pid={self.pid}" if self.pid is not None else "stopped"
        return f"FlightdeckServer(base_url={self.base_url!r}, {state}, workdir='{self.workdir}')"

    # ------------------------------------------------------------------ internals

    def _cli_env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.pop(_TOKEN_ENV, None)
        env.setdefault("PYTHONUNBUFFERED", "1")
        return env

    def _run_cli(self, cli: list[str], args: list[str], timeout_s: float) -> str:
        argv = [*cli, *args]
        try:
            done = subprocess.run(
                argv,
                cwd=self.workdir,
                env=self._cli_env(),
                capture_output=True,
                text=True,
                timeout=timeout_s,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            raise RuntimeError(f"`{' '.join(argv)}` timed out after {timeout_s} s") from exc
        if done.returncode != 0:
            raise RuntimeError(
                f"`{' '.join(argv)}` failed with exit status {done.returncode} "
                f"(cwd {self.workdir})\nstdout:\n{done.stdout}\nstderr:\n{done.stderr}"
            )
        return done.stdout.strip()

    def _prepare_workspace(self, cli: list[str], timeout_s: float) -> None:
        init_args = ["init"] if self.bundled_pricing else ["init", "--no-bundled-pricing"]
        self._run_cli(cli, init_args, timeout_s)
        if self.database_url is not None:
            # A JSON string is a valid YAML double-quoted scalar.
            self._set_config("database_url", json.dumps(self.database_url))
        if self.approval:
            self._set_config("promotion_requires_approval", "true")
        self.baseline_id = self._register(cli, FIXTURES_DIR / "baseline-release", timeout_s)
        self.candidate_id = self._register(cli, FIXTURES_DIR / "candidate-release", timeout_s)
        for name in ("pricing-baseline.yaml", "pricing-candidate.yaml"):
            self._run_cli(cli, ["pricing", "import", str(FIXTURES_DIR / name)], timeout_s)
        self._run_cli(cli, ["policy", "set", str(FIXTURES_DIR / "policy.yaml")], timeout_s)

    def _register(self, cli: list[str], bundle: pathlib.Path, timeout_s: float) -> str:
        out = self._run_cli(cli, ["release", "register", str(bundle)], timeout_s)
        release_id = out.splitlines()[-1].strip() if out else ""
        if not release_id.startswith("rel_"):
            raise RuntimeError(f"unexpected output from `release register {bundle}`: {out!r}")
        return release_id

    def _set_config(self, name: str, value: str) -> None:
        """Set a top-level ``name: value`` line in ``flightdeck.yaml`` (appended if absent)."""
        config = self.workdir / "flightdeck.yaml"
        lines = config.read_text(encoding="utf-8").splitlines()
        key = f"{name}:"
        replaced = [f"{key} {value}" if line.startswith(key) else line for line in lines]
        if f"{key} {value}" not in replaced:
            replaced.append(f"{key} {value}")
        config.write_text("\n".join(replaced) + "\n", encoding="utf-8")

    def _serve(self, cli: list[str], timeout_s: float) -> None:
        env = self._cli_env()
        if self.token is not None:
            env[_TOKEN_ENV] = self.token
        log_path = self.workdir / _LOG_NAME
        self._log = open(log_path, "ab")  # closed in stop()
        last_error = ""
        for _ in range(_PORT_ATTEMPTS):
            port = _free_port()
            proc = subprocess.Popen(
                [*cli, "serve", "--host", "127.0.0.1", "--port", str(port)],
                cwd=self.workdir,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=self._log,
                stderr=subprocess.STDOUT,
            )
            self._proc, self.pid, self.port = proc, proc.pid, port
            self.base_url = f"http://127.0.0.1:{port}"
            status = self._wait_ready(proc, timeout_s)
            if status is None:
                return
            last_error = status
            if proc.poll() is None:
                # Timed out while the process is alive: no point in trying another port.
                break
            # The process died (most likely the port was taken meanwhile): try again.
            self._proc, self.pid = None, None
        raise RuntimeError(
            f"flightdeck serve did not become ready: {last_error}\n"
            f"--- tail of {log_path} ---\n{_tail(log_path)}"
        )

    def _wait_ready(self, proc: subprocess.Popen[bytes], timeout_s: float) -> str | None:
        """Poll ``GET /health``; return ``None`` when ready, else a description of the failure."""
        # An empty ProxyHandler keeps HTTP(S)_PROXY from the environment away from loopback.
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        deadline = time.monotonic() + timeout_s
        last = "no answer yet"
        while time.monotonic() < deadline:
            code = proc.poll()
            if code is not None:
                return f"process exited with status {code}"
            try:
                with opener.open(f"{self.base_url}/health", timeout=1.0) as resp:
                    if resp.status == 200:
                        return None
                    last = f"GET /health answered {resp.status}"
            except urllib.error.HTTPError as exc:
                last = f"GET /health answered {exc.code}"
            except (urllib.error.URLError, OSError) as exc:
                last = f"GET /health failed: {exc}"
            time.sleep(_POLL_INTERVAL_S)
        return f"timed out after {timeout_s} s ({last})"
