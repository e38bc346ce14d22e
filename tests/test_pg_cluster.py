"""The test-side PostgreSQL launcher (``tests/pg_cluster.py``) and how the suite selects it.

The cluster lifecycle test needs PostgreSQL: it is skipped when PostgreSQL is unavailable in a
SQLite run, and fails in a ``FDRS_TEST_DATABASE=postgres`` run. The other tests need no
PostgreSQL at all.
"""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys

import pytest

from conftest import DATABASE_ENV, REPO, TEST_DATABASE
from pg_cluster import PgCluster, PgUnavailableError, find_pg_bindir


def run_pytest(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    child_env = {k: v for k, v in os.environ.items() if not k.startswith("FDRS_")}
    child_env.update(env)
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rfEs", *args],
        cwd=REPO,
        env=child_env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_explicit_bindir_must_hold_the_server(
    monkeypatch: pytest.MonkeyPatch, tmp_path: pathlib.Path
) -> None:
    monkeypatch.setenv("FDRS_PG_BINDIR", str(tmp_path))
    with pytest.raises(PgUnavailableError, match="does not hold initdb and postgres"):
        find_pg_bindir()
    with pytest.raises(PgUnavailableError):
        PgCluster().start()


def test_missing_postgres_fails_the_run(tmp_path: pathlib.Path) -> None:
    """Asked for PostgreSQL but none there: the server tests error out, none is skipped."""
    done = run_pytest(
        {DATABASE_ENV: "postgres", "FDRS_PG_BINDIR": str(tmp_path)},
        "tests/test_e2e.py::test_quickstart",
    )
    out = done.stdout + done.stderr
    assert done.returncode == 1, out
    assert "4 errors" in out and "skipped" not in out, out
    assert f"{DATABASE_ENV}=postgres but PostgreSQL is not available" in out, out


def test_unknown_backend_is_a_usage_error() -> None:
    done = run_pytest({DATABASE_ENV: "mysql"}, "--collect-only", "tests/test_pg_cluster.py")
    assert done.returncode == pytest.ExitCode.USAGE_ERROR, done.stdout + done.stderr
    assert "use sqlite or postgres" in done.stderr


def test_cluster_lifecycle() -> None:
    cluster = PgCluster()
    try:
        cluster.start()
    except PgUnavailableError as exc:
        if TEST_DATABASE == "postgres":
            pytest.fail(f"PostgreSQL is not available: {exc}", pytrace=False)
        pytest.skip(f"PostgreSQL is not available: {exc}")
    try:
        root, pid = cluster.root, cluster.pid
        assert pid is not None and cluster.port is not None
        if os.geteuid() == 0:
            assert cluster.user != "root"
        first, second = cluster.create_database(), cluster.create_database("other")
        assert first != second
        assert first.startswith(f"postgresql://fdrs@127.0.0.1:{cluster.port}/fdrs_")
        assert cluster.databases == [
            first.rsplit("/", 1)[1],
            second.rsplit("/", 1)[1],
        ]
        with cluster.connect(cluster.databases[1]) as conn:
            row = conn.execute("SELECT current_database(), current_setting('listen_addresses')")
            assert row.fetchone() == (cluster.databases[1], "127.0.0.1")
        assert (root / "sock").is_dir() and (root / "data" / "PG_VERSION").is_file()
    finally:
        cluster.stop()
    assert not root.exists() and cluster.pid is None and cluster.databases == []
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    cluster.stop()  # idempotent
