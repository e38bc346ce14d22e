# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # flightdeck-rs in a notebook
#
# This file is a notebook in Jupytext's percent format and a plain script at once:
#
# * as a notebook: open it in JupyterLab or Notebook with `jupytext` installed
#   (`pip install jupytext`; "Open With > Notebook"), or convert it with
#   `jupytext --to ipynb examples/notebook_walkthrough.py`;
# * as a script: `python examples/notebook_walkthrough.py`.
#
# It talks to `$FLIGHTDECK_URL` when set (with `$FLIGHTDECK_BASELINE_ID` and
# `$FLIGHTDECK_CANDIDATE_ID` naming two registered releases of one agent, and
# `$FLIGHTDECK_LOCAL_API_TOKEN` when the server wants one); otherwise it starts a throwaway
# local `flightdeck serve` (needs `pip install flightdeck-ai==1.3.0`) and stops it in the last
# cell. Everything it writes goes to a fresh environment (`$FLIGHTDECK_ENVIRONMENT` to choose
# one). Section 5 uses pandas when it is installed.

# %% [markdown]
# ## 1. Connect
#
# One client per notebook is enough: it keeps a connection pool, and every call releases the
# GIL while it waits on the network.

# %%
import asyncio
import json
import os
import shutil
import statistics
import tempfile
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

from flightdeck_rs import AsyncFlightdeckClient, FlightdeckClient, RunEvent, get_emitter
from flightdeck_rs._server import FlightdeckServer
from flightdeck_rs.recipes import runs_dataframe

server: FlightdeckServer | None = None
if os.environ.get("FLIGHTDECK_URL"):
    BASE_URL = os.environ["FLIGHTDECK_URL"]
    BASELINE = os.environ["FLIGHTDECK_BASELINE_ID"]
    CANDIDATE = os.environ["FLIGHTDECK_CANDIDATE_ID"]
else:
    server = FlightdeckServer().start()
    BASE_URL, BASELINE, CANDIDATE = server.base_url, server.baseline_id, server.candidate_id
TOKEN = os.environ.get("FLIGHTDECK_LOCAL_API_TOKEN") or None
# A fresh environment keeps this walkthrough's events apart from anything else.
ENV = os.environ.get("FLIGHTDECK_ENVIRONMENT") or f"notebook-{uuid.uuid4().hex[:8]}"

client = FlightdeckClient(BASE_URL, api_token=TOKEN)
print(client.health())
print(client.get_workspace()["server_version"])

# %% [markdown]
# ## 2. Bulk-load a JSONL file
#
# `ingest_jsonl` streams the file, validates every line, reports the bad ones by line number
# and sends the rest in concurrent chunks. `progress` is called after every chunk.


# %%
def make_event(release_id: str, i: int, *, latency_ms: int) -> RunEvent:
    """One synthetic run, ``i`` minutes ago."""
    return RunEvent(
        timestamp=datetime.now(UTC) - timedelta(minutes=i),
        agent_id="agent_support",
        release_id=release_id,
        run_id=f"nb-{uuid.uuid4().hex}",
        tenant_id="tenant_acme",
        task_id="task_support",
        environment=ENV,
        metrics={"success": i % 17 != 0, "latency_ms": latency_ms + (i * 37) % 400},
        usage={
            "model": {
                "provider": "openai",
                "model": "gpt-4.1-mini",
                "input_tokens": 1000,
                "output_tokens": 500,
            }
        },
    )


workdir = Path(tempfile.mkdtemp(prefix="fdrs-notebook-"))
jsonl = workdir / "events.jsonl"
with jsonl.open("w") as f:
    for i in range(120):
        f.write(make_event(BASELINE, i, latency_ms=800).model_dump_json() + "\n")
        f.write(make_event(CANDIDATE, i, latency_ms=950).model_dump_json() + "\n")
    f.write('{"this line": "is not an event"}\n')  # reported, not sent


def show_progress(done_lines: int, sent: int, inserted: int) -> None:
    """Prints one line per finished chunk."""
    print(f"  {done_lines:>5} lines done, {sent:>5} sent, {inserted:>5} inserted")


summary = client.ingest_jsonl(jsonl, chunk_size=50, concurrency=4, progress=show_progress)
print(summary.sent, "sent,", summary.inserted, "inserted,", summary.duplicates, "duplicates")
for line_no, error in summary.rejected:
    print(f"  line {line_no} rejected: {error[:80]}")

# %% [markdown]
# ## 3. Read events back, page by page
#
# `iter_runs` walks `GET /v1/runs` with `offset`/`limit` for you (newest first). Nothing is
# fetched before you iterate, and only one page is held at a time.

# %%
latencies = [
    e.metrics.latency_ms
    for e in client.iter_runs(release_id=CANDIDATE, window="1d", environment=ENV, page_size=100)
    if e.metrics.latency_ms is not None
]
print(f"{len(latencies)} candidate runs, p50 latency {statistics.median(latencies):.0f} ms")

# %% [markdown]
# ## 4. Export to NDJSON
#
# `iter_runs_export` reads the NDJSON export page by page and parses it line by line; the
# command line does the same: `flightdeck-rs export --release R --window 1d -o out.ndjson`.

# %%
out = workdir / "baseline.ndjson"
with out.open("w") as f:
    n = 0
    for event in client.iter_runs_export(release_id=BASELINE, window="1d", environment=ENV):
        f.write(event.model_dump_json() + "\n")
        n += 1
print(f"exported {n} baseline events to {out}")

# %% [markdown]
# ## 5. Runs as a pandas DataFrame
#
# `runs_dataframe` (in `flightdeck_rs.recipes`) takes events from `iter_runs`,
# `iter_runs_export`, `list_runs(...)["events"]` or the lines of an export file and returns
# one row per run: `timestamp` is a UTC `datetime64` column, and `request`, `metrics` and
# `usage.model` are flattened into `metrics.latency_ms`, `usage.model.input_tokens`, ... columns
# (the names `pandas.json_normalize` uses). pandas stays optional: `flightdeck_rs` never imports
# it, `runs_dataframe` does when called.
#
# With pandas alone, the same frame comes from `pd.json_normalize` of the JSON dumps plus
# `pd.to_datetime(..., utc=True)`, shown below on the export file of section 4.

# %%
try:
    import pandas as pd
except ImportError:  # pandas is optional
    pd = None
    print("pandas is not installed (pip install pandas): skipping the DataFrame recipe")

if pd is not None:
    runs = runs_dataframe(
        client.iter_runs(release_id=CANDIDATE, window="1d", environment=ENV, page_size=100)
    )
    print(runs[["timestamp", "metrics.latency_ms", "usage.model.input_tokens"]].dtypes)
    hourly = runs.set_index("timestamp").resample("1h")["metrics.latency_ms"].median()
    print(f"{len(runs)} runs; median latency per hour:")
    print(hourly.dropna().tail(3))

    # By hand, from the NDJSON export of section 4:
    with out.open() as lines:
        exported = pd.json_normalize([json.loads(line) for line in lines])
    exported["timestamp"] = pd.to_datetime(exported["timestamp"], utc=True, format="ISO8601")
    print("export:", len(exported), "rows,", exported["timestamp"].dtype)

# %% [markdown]
# ## 6. The async twins
#
# Every method of `AsyncFlightdeckClient` is a coroutine, and the helpers have `async for`
# twins. A notebook cell runs on the kernel's event loop, so it can `await` at top level;
# `asyncio.run()` would fail there ("cannot be called from a running event loop"). A plain
# script has no running loop and uses `asyncio.run()`. The two cells below are the same step:
# the notebook gets the first, the script the second (Jupytext's `active` cell marker).


# %%
async def count_failures() -> int:
    """Counts failed candidate runs with the async client."""
    async with AsyncFlightdeckClient(BASE_URL, api_token=TOKEN) as aclient:
        failures = 0
        async for event in aclient.iter_runs(release_id=CANDIDATE, window="1d", environment=ENV):
            failures += not event.metrics.success
        return failures


# %% active="ipynb"
# failures = await count_failures()

# %% active="py"
failures = asyncio.run(count_failures())

# %%
print("failed candidate runs:", failures)

# %% [markdown]
# ## 7. Compare the releases

# %%
diff = client.post_diff(
    baseline_release_id=BASELINE, candidate_release_id=CANDIDATE, window="1d", environment=ENV
)
print("confidence:", diff["samples"]["confidence"])
print("policy passed:", diff["policy"]["passed"], diff["policy"]["reasons"])

# %% [markdown]
# ## 8. Report live runs without waiting: the emitter
#
# `get_emitter` returns the same background emitter each time the cell is re-run, so a
# notebook never piles up sender threads. `emit` only queues.

# %%
emitter = get_emitter(BASE_URL, api_token=TOKEN)
emitter.emit(make_event(CANDIDATE, 0, latency_ms=700))
emitter.flush(timeout_s=5.0)
print({k: v for k, v in emitter.stats().items() if k in ("accepted", "acked", "requests")})

# %% [markdown]
# ## 9. Clean up

# %%
emitter.close()
client.close()
shutil.rmtree(workdir, ignore_errors=True)
if server is not None:
    server.stop()
