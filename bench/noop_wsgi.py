"""A WSGI app that reads the body and answers ``202 {"accepted": 100}``: the ingest
benchmark's HTTP baseline (gunicorn + the load generator, no Django, no Kafka)."""

from __future__ import annotations

BODY = b'{"accepted":100}'


def application(environ, start_response):
    stream = environ["wsgi.input"]
    length = int(environ.get("CONTENT_LENGTH") or 0)
    while length > 0:
        chunk = stream.read(min(length, 65536))
        if not chunk:
            break
        length -= len(chunk)
    start_response(
        "202 Accepted",
        [("Content-Type", "application/json"), ("Content-Length", str(len(BODY)))],
    )
    return [BODY]
