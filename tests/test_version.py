"""The version is defined once (Cargo.toml) and reported the same way everywhere."""

from __future__ import annotations

import importlib.metadata
import pathlib
import re
import subprocess
import sys
import tomllib

import flightdeck_rs
from flightdeck_rs import _native

ROOT = pathlib.Path(__file__).resolve().parent.parent


def cargo_version() -> str:
    with open(ROOT / "Cargo.toml", "rb") as f:
        version = tomllib.load(f)["package"]["version"]
    assert isinstance(version, str)
    return version


def test_pyproject_takes_the_version_from_cargo() -> None:
    with open(ROOT / "pyproject.toml", "rb") as f:
        project = tomllib.load(f)["project"]
    assert "version" not in project
    assert "version" in project["dynamic"]


def test_dunder_version_is_the_crate_version() -> None:
    assert re.fullmatch(r"\d+\.\d+\.\d+([.-]?\w+)*", flightdeck_rs.__version__)
    assert flightdeck_rs.__version__ == _native.__version__ == cargo_version()


def test_installed_metadata_has_the_same_version() -> None:
    assert importlib.metadata.version("flightdeck-rs") == flightdeck_rs.__version__


def test_cli_version() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "flightdeck_rs", "--version"],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == f"flightdeck-rs {cargo_version()}"
