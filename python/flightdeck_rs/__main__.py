"""``python -m flightdeck_rs``: the ``flightdeck-rs`` command line."""

from __future__ import annotations

from flightdeck_rs.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
