"""A small Flask app for the gunicorn gevent-worker test (``tests/test_green.py``): ``/slow``
calls our sync client against a slow server, ``/fast`` answers at once."""

from __future__ import annotations

import os

from flask import Flask

from flightdeck_rs.sdk import FlightdeckClient

app = Flask(__name__)
client = FlightdeckClient(os.environ["FDRS_SLOW_URL"], timeout_s=30.0)


@app.get("/slow")
def slow() -> dict[str, object]:
    return client.health()


@app.get("/fast")
def fast() -> str:
    return "fast"
