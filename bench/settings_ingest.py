"""Settings for the gunicorn of ``bench/run ingest`` (bench only): ``config.settings`` with
the ingest throttle off.

The throttle allows 600 requests a minute per client IP, and the load generator is one IP
(127.0.0.1) standing in for many clients: at 5,000 events/s (50 batches of 100 a second)
it would be answering 429s after 12 s. Everything else is production's.
"""

from __future__ import annotations

from config.settings import *  # noqa: F403
from config.settings import REST_FRAMEWORK

REST_FRAMEWORK = {
    **REST_FRAMEWORK,
    "DEFAULT_THROTTLE_RATES": {**REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"], "ingest": None},
}
