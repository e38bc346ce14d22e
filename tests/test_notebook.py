"""Notebooks on a real Jupyter kernel (nbclient + ipykernel) against a real ``flightdeck serve``.

* ``examples/notebook_walkthrough.py`` read as a notebook by Jupytext and executed top to bottom
  (its async step is a top-level ``await``; the ``asyncio.run`` twin is a raw cell there);
* the README's async section: the ``asyncio.run`` block as a script, the top-level ``await``
  block in a kernel.

The script form of the walkthrough is run by ``test_helpers_cli.test_notebook_walkthrough_runs``.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import jupytext  # the test dependencies include jupytext, nbclient and ipykernel
import nbclient
import nbformat
import pytest

from conftest import REPO, make_events, unique_env
from flightdeck_rs import FlightdeckClient, RunEvent

pytestmark = pytest.mark.timeout(240)

WALKTHROUGH = REPO / "examples" / "notebook_walkthrough.py"
README = REPO / "README.md"
DEFAULT_URL = "http://127.0.0.1:8765"


def kernel_env(**extra: str) -> dict[str, str]:
    """The test process's environment (so the kernel imports the same ``flightdeck_rs``)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLIGHTDECK_")}
    env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)
    env.update(extra)
    return env


def execute(nb: Any, cwd: Path, env: dict[str, str]) -> Any:
    """Runs every code cell on a fresh ``python3`` kernel; a failing cell raises."""
    client = nbclient.NotebookClient(
        nb,
        kernel_name="python3",
        timeout=120,
        startup_timeout=120,
        resources={"metadata": {"path": str(cwd)}},
    )
    client.execute(env=env)
    return nb


def outputs(nb: Any) -> str:
    text: list[str] = []
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            if out.get("output_type") == "stream":
                text.append(out["text"])
            elif "data" in out:
                text.append(out["data"].get("text/plain", ""))
            elif out.get("output_type") == "error":
                text.append("\n".join(out.get("traceback", [])))
    return "".join(text)


def test_walkthrough_is_a_notebook_with_a_top_level_await() -> None:
    nb = jupytext.read(WALKTHROUGH)
    assert nb.metadata["kernelspec"]["name"] == "python3"
    awaiting = [
        c for c in nb.cells if c.cell_type == "code" and "await count_failures()" in c.source
    ]
    assert [c.source for c in awaiting] == ["failures = await count_failures()"]
    # The script's asyncio.run twin is not executed in the notebook.
    twins = [c for c in nb.cells if "asyncio.run(count_failures())" in c.source]
    assert [c.cell_type for c in twins] == ["raw"]


def test_walkthrough_runs_on_a_real_kernel(server: Any, tmp_path: Path) -> None:
    nb = jupytext.read(WALKTHROUGH)
    env = kernel_env(
        FLIGHTDECK_URL=server.base_url,
        FLIGHTDECK_BASELINE_ID=server.baseline_id,
        FLIGHTDECK_CANDIDATE_ID=server.candidate_id,
        FLIGHTDECK_ENVIRONMENT=unique_env("nb-kernel"),
    )
    text = outputs(execute(nb, tmp_path, env))
    assert "240 sent, 240 inserted" in text and "line 241 rejected" in text
    assert re.search(r"^failed candidate runs: \d+$", text, re.M), text
    assert "timestamp                   datetime64[ns, UTC]" in text
    assert "usage.model.input_tokens                  int64" in text
    # pandas picks the unit of the by-hand path (ns with pandas 2, us with pandas 3).
    assert re.search(r"^export: 120 rows, datetime64\[[mun]?s, UTC\]$", text, re.M), text
    assert "policy passed:" in text


def readme_async_blocks() -> list[str]:
    text = README.read_text(encoding="utf-8")
    match = re.search(r"^## Async use\n(.*?)(?=^## )", text, re.S | re.M)
    assert match, "README has no '## Async use' section"
    blocks = re.findall(r"^```python\n(.*?)^```", match.group(1), re.S | re.M)
    assert len(blocks) >= 2 and "asyncio.run(main())" in blocks[0], blocks
    assert "\nasync with " in blocks[1] and "asyncio.run" not in blocks[1], blocks[1]
    return [b.replace(DEFAULT_URL, "{url}") for b in blocks]


def test_readme_async_forms(server: Any, tmp_path: Path) -> None:
    env = unique_env("readme-async")
    with FlightdeckClient(server.base_url) as client:
        client.ingest_run_events(make_events(RunEvent, server.baseline_id, 2, environment=env))
    script, notebook_cell = readme_async_blocks()[:2]
    assert script.count("{url}") == 1 and notebook_cell.count("{url}") == 1

    done = subprocess.run(
        [sys.executable, "-c", script.replace("{url}", server.base_url)],
        capture_output=True,
        text=True,
        timeout=60,
        env=kernel_env(),
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "'releases': [" in done.stdout

    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(notebook_cell.replace("{url}", server.base_url))]
    text = outputs(execute(nb, tmp_path, kernel_env()))
    assert "'releases': [" in text and "'promoted': [" in text
    assert re.search(r"\} \d+\n$", text), text  # ends with the number of runs read
