"""Reproducible benchmarks that print figures (one JSON line plus a short table each).

Run them with ``bench/run <name>``; see ``bench/README.md``. Nothing here is imported by
the application or the tests, and nothing here asserts a timing.
"""
