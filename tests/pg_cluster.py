"""A throwaway PostgreSQL cluster for tests that run ``flightdeck serve`` on PostgreSQL.

:class:`PgCluster` runs ``initdb`` in a temporary directory (trust authentication, listening
on ``127.0.0.1`` only, unix socket inside the temporary directory, a free port), starts
``postgres`` in the foreground as a child process, creates one database per
:meth:`PgCluster.create_database` call and, on :meth:`PgCluster.stop`, shuts the server down
and removes the directory.

PostgreSQL refuses to run as root. When the tests run as root, ``initdb`` and ``postgres`` run
as an unprivileged account instead: ``$FDRS_PG_USER`` if set, else ``postgres`` (created by the
distribution packages), else ``nobody``.

The server binaries are taken from ``$FDRS_PG_BINDIR`` when it is set (and only from there),
else looked up on ``PATH``, in ``pg_config --bindir`` and in
``/usr/lib/postgresql/<version>/bin`` (newest first). The
``psycopg`` driver (``pip install 'flightdeck-ai[postgres]==1.3.0'``) creates the databases;
``flightdeck serve`` needs it anyway.

Example:
    >>> with PgCluster() as cluster:  # doctest: +SKIP
    ...     url = cluster.create_database()
    ...     print(url)  # postgresql://fdrs@127.0.0.1:<port>/fdrs_<hex>
"""

from __future__ import annotations

import atexit
import glob
import os
import pathlib
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from types import ModuleType, TracebackType
from typing import IO, Any

if sys.platform != "win32":  # Unix accounts; PgCluster.start refuses to run on Windows
    import pwd

__all__ = ["PgCluster", "PgUnavailableError", "find_pg_bindir"]

SUPERUSER = "fdrs"
_LOG_NAME = "postgres.log"
_LOG_TAIL_CHARS = 3000
_PORT_ATTEMPTS = 3
_POLL_INTERVAL_S = 0.05
_FAST_STOP_S = 15.0
_KILL_WAIT_S = 5.0
_SERVER_BINARIES = ("initdb", "postgres")
# Settings for a disposable test cluster: no durability, loopback only, enough connections for
# several servers that open one connection per request from a 40-thread pool.
_SETTINGS = {
    "listen_addresses": "127.0.0.1",
    "max_connections": "200",
    "shared_buffers": "32MB",
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "timezone": "UTC",
}


class PgUnavailableError(RuntimeError):
    """PostgreSQL (binaries, an account to run it as, or the driver) is not available here."""


def _is_server_bindir(path: pathlib.Path) -> bool:
    return all(
        os.access(path / name, os.X_OK) and (path / name).is_file() for name in _SERVER_BINARIES
    )


def _version_key(path: pathlib.Path) -> tuple[int, ...]:
    # /usr/lib/postgresql/<version>/bin: newest version first when sorted in reverse.
    return tuple(int(part) for part in re.findall(r"\d+", path.parent.name))


def find_pg_bindir() -> pathlib.Path:
    """Return a directory holding the PostgreSQL server binaries (``initdb`` and ``postgres``).

    Raises:
        PgUnavailableError: If none is found; the message lists where it looked.
    """
    if env_dir := os.environ.get("FDRS_PG_BINDIR"):
        if _is_server_bindir(pathlib.Path(env_dir)):
            return pathlib.Path(env_dir)
        raise PgUnavailableError(f"FDRS_PG_BINDIR={env_dir} does not hold initdb and postgres")
    candidates: list[pathlib.Path] = []
    if on_path := shutil.which("initdb"):
        # Resolve symlinks (e.g. /usr/local/bin/initdb -> /usr/lib/postgresql/15/bin/initdb) so
        # that `postgres` is taken from the same installation.
        candidates.append(pathlib.Path(os.path.realpath(on_path)).parent)
        candidates.append(pathlib.Path(on_path).parent)
    if pg_config := shutil.which("pg_config"):
        try:
            out = subprocess.run(
                [pg_config, "--bindir"], capture_output=True, text=True, timeout=10, check=False
            ).stdout.strip()
        except (OSError, subprocess.TimeoutExpired):
            out = ""
        if out:
            candidates.append(pathlib.Path(out))
    debian = [pathlib.Path(p) for p in glob.glob("/usr/lib/postgresql/*/bin")]
    candidates.extend(sorted(debian, key=_version_key, reverse=True))
    for candidate in candidates:
        if _is_server_bindir(candidate):
            return candidate
    looked = ", ".join(str(c) for c in candidates) or "nowhere"
    raise PgUnavailableError(
        "PostgreSQL server binaries (initdb, postgres) not found; looked on PATH, in "
        f"`pg_config --bindir` and /usr/lib/postgresql/*/bin ({looked}). "
        "Install them (Debian/Ubuntu: apt-get install -y postgresql) or set FDRS_PG_BINDIR."
    )


def _run_as() -> pwd.struct_passwd | None:
    """The account to run PostgreSQL as: ``None`` (ourselves) unless we are root."""
    if os.geteuid() != 0:
        return None
    names = [os.environ["FDRS_PG_USER"]] if os.environ.get("FDRS_PG_USER") else []
    names += ["postgres", "nobody"]
    for name in names:
        try:
            account = pwd.getpwnam(name)
        except KeyError:
            continue
        if account.pw_uid != 0:
            return account
    raise PgUnavailableError(
        "PostgreSQL refuses to run as root and no unprivileged account was found "
        f"(tried {', '.join(names)}); set FDRS_PG_USER to one."
    )


def _psycopg() -> ModuleType:
    try:
        import psycopg
    except ImportError as exc:
        raise PgUnavailableError(
            "the psycopg driver is not installed; flightdeck serve needs it for PostgreSQL: "
            "pip install 'flightdeck-ai[postgres]==1.3.0'"
        ) from exc
    return psycopg


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _tail(path: pathlib.Path, limit: int = _LOG_TAIL_CHARS) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return "<no log>"
    return text[-limit:] if text else "<empty log>"


class PgCluster:
    """A PostgreSQL cluster in a temporary directory, on ``127.0.0.1:<free port>``.

    Attributes:
        bindir: Directory of the server binaries in use.
        root: The temporary directory (``data/``, ``sock/``, ``postgres.log``).
        port: The TCP port once started, else ``None``.
        pid: PID of the ``postgres`` process while it runs, else ``None``.
        user: Name of the account the server runs as.
    """

    def __init__(
        self,
        *,
        bindir: str | os.PathLike[str] | None = None,
        base_dir: str | os.PathLike[str] | None = None,
    ) -> None:
        """Configure (but do not start) a cluster.

        Args:
            bindir: Directory holding ``initdb`` and ``postgres``; found by
                :func:`find_pg_bindir` when ``None``.
            base_dir: Where to create the temporary directory (default: the system's). When
                running as root it must be reachable by the unprivileged account.
        """
        self._bindir_arg = pathlib.Path(bindir) if bindir is not None else None
        self._base_dir = base_dir
        self.bindir = pathlib.Path()
        self.root = pathlib.Path()
        self.port: int | None = None
        self.pid: int | None = None
        self.user = ""
        self._account: pwd.struct_passwd | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None
        self._root_created = False
        self._databases: list[str] = []

    # ------------------------------------------------------------------ lifecycle

    def start(self, timeout_s: float = 60.0) -> PgCluster:
        """Create the cluster and start the server; return ``self`` once it accepts connections.

        Raises:
            PgUnavailableError: Binaries, driver or an unprivileged account are missing.
            RuntimeError: ``initdb`` failed or the server did not come up (with its log tail).
        """
        if self._proc is not None:
            raise RuntimeError("PgCluster is already running")
        if sys.platform == "win32":
            raise PgUnavailableError("the PostgreSQL test cluster runs on Unix only")
        self.bindir = self._bindir_arg if self._bindir_arg is not None else find_pg_bindir()
        if not _is_server_bindir(self.bindir):
            raise PgUnavailableError(f"{self.bindir} does not hold initdb and postgres")
        _psycopg()
        self._account = _run_as()
        self.user = self._account.pw_name if self._account else pwd.getpwuid(os.geteuid()).pw_name
        self.root = pathlib.Path(tempfile.mkdtemp(prefix="flightdeck-rs-pg-", dir=self._base_dir))
        self._root_created = True
        atexit.register(self.stop)
        try:
            (self.root / "sock").mkdir(mode=0o700)
            if self._account is not None:
                for path in (self.root, self.root / "sock"):
                    os.chown(path, self._account.pw_uid, self._account.pw_gid)
            self._initdb(timeout_s)
            self._serve(timeout_s)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Fast shutdown (SIGINT), then SIGQUIT/SIGKILL if needed; remove the directory.

        Safe to call more than once and on a cluster that never started.
        """
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            for sig, wait_s in (
                (signal.SIGINT, _FAST_STOP_S),
                (signal.SIGQUIT, _KILL_WAIT_S),
                (signal.SIGKILL, _KILL_WAIT_S),
            ):
                try:
                    proc.send_signal(sig)
                except ProcessLookupError:
                    break
                try:
                    proc.wait(timeout=wait_s)
                    break
                except subprocess.TimeoutExpired:
                    continue
        self.pid = None
        self.port = None
        self._databases.clear()
        if self._log is not None:
            self._log.close()
            self._log = None
        if self._root_created:
            shutil.rmtree(self.root, ignore_errors=True)
            self._root_created = False
        atexit.unregister(self.stop)

    def __enter__(self) -> PgCluster:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = f"port={self.port}, pid={self.pid}" if self.pid is not None else "stopped"
        return f"PgCluster({state}, root='{self.root}')"

    # ------------------------------------------------------------------ databases

    def url(self, database: str = "postgres") -> str:
        """``postgresql://`` URL of ``database`` (trust authentication, no password)."""
        if self.port is None:
            raise RuntimeError("PgCluster is not running")
        return f"postgresql://{SUPERUSER}@127.0.0.1:{self.port}/{database}"

    def create_database(self, prefix: str = "fdrs") -> str:
        """Create a fresh, empty database and return its URL."""
        name = f"{prefix}_{uuid.uuid4().hex[:12]}"
        if not re.fullmatch(r"[a-z_][a-z0-9_]*", name):
            raise ValueError(f"invalid database name {name!r}")
        with self.connect() as conn:
            conn.execute(f"CREATE DATABASE {name}")
        self._databases.append(name)
        return self.url(name)

    @property
    def databases(self) -> list[str]:
        """Names of the databases created by :meth:`create_database` (oldest first)."""
        return list(self._databases)

    def connect(self, database: str = "postgres") -> Any:
        """A ``psycopg`` connection (autocommit) to ``database``; use it as a context manager."""
        return _psycopg().connect(self.url(database), autocommit=True, connect_timeout=5)

    # ------------------------------------------------------------------ internals

    def _child_env(self) -> dict[str, str]:
        # PG* variables (PGDATA, PGPORT, ...) of the caller must not steer the test cluster.
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        env["LC_ALL"] = "C"
        env["TZ"] = "UTC"
        if self._account is not None:
            env.update(
                HOME=str(self.root), USER=self._account.pw_name, LOGNAME=self._account.pw_name
            )
        return env

    def _as_user(self) -> dict[str, Any]:
        """``subprocess`` keyword arguments that run the child as the unprivileged account."""
        if self._account is None:
            return {}
        return {"user": self._account.pw_uid, "group": self._account.pw_gid, "extra_groups": []}

    def _initdb(self, timeout_s: float) -> None:
        argv = [
            str(self.bindir / "initdb"),
            "--pgdata", str(self.root / "data"),
            "--username", SUPERUSER,
            "--auth", "trust",
            "--encoding", "UTF8",
            "--locale", "C",
            "--no-sync",
        ]  # fmt: skip
        try:
            done = subprocess.run(
                argv,
                cwd=self.root,
                env=self._child_env(),
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                timeout=timeout_s,
                check=False,
                **self._as_user(),
            )
        except subprocess.TimeoutExpired as exc:
            raise RuntimeError(f"initdb timed out after {timeout_s} s") from exc
        if done.returncode != 0:
            hint = ""
            if self._account is not None:
                hint = (
                    f"\n(initdb runs as {self._account.pw_name}: {self.root} must be reachable "
                    "by that account; pass another base_dir or set FDRS_PG_USER)"
                )
            raise RuntimeError(
                f"`{' '.join(argv)}` failed with exit status {done.returncode}{hint}\n"
                f"stdout:\n{done.stdout}\nstderr:\n{done.stderr}"
            )

    def _serve(self, timeout_s: float) -> None:
        log_path = self.root / _LOG_NAME
        self._log = open(log_path, "ab")  # closed in stop()
        settings = dict(_SETTINGS, unix_socket_directories=str(self.root / "sock"))
        last_error = ""
        for _ in range(_PORT_ATTEMPTS):
            port = _free_port()
            argv = [str(self.bindir / "postgres"), "-D", str(self.root / "data"), "-p", str(port)]
            for key, value in settings.items():
                argv += ["-c", f"{key}={value}"]
            proc = subprocess.Popen(
                argv,
                cwd=self.root,
                env=self._child_env(),
                stdin=subprocess.DEVNULL,
                stdout=self._log,
                stderr=subprocess.STDOUT,
                **self._as_user(),
            )
            self._proc, self.pid, self.port = proc, proc.pid, port
            status = self._wait_ready(proc, timeout_s)
            if status is None:
                return
            last_error = status
            if proc.poll() is None:
                break  # alive but not answering: another port will not help
            # Exited, most likely because the port was taken meanwhile: try another one.
            self._proc, self.pid, self.port = None, None, None
        raise RuntimeError(
            f"postgres did not become ready: {last_error}\n"
            f"--- tail of {log_path} ---\n{_tail(log_path)}"
        )

    def _wait_ready(self, proc: subprocess.Popen[bytes], timeout_s: float) -> str | None:
        """Connect until it works; ``None`` when ready, else a description of the failure."""
        psycopg = _psycopg()
        deadline = time.monotonic() + timeout_s
        last = "no answer yet"
        while time.monotonic() < deadline:
            code = proc.poll()
            if code is not None:
                return f"process exited with status {code}"
            try:
                with self.connect() as conn:
                    conn.execute("SELECT 1")
                return None
            except psycopg.OperationalError as exc:
                last = str(exc).strip() or type(exc).__name__
            time.sleep(_POLL_INTERVAL_S)
        return f"timed out after {timeout_s} s ({last})"
