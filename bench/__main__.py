"""``python -m bench <name> [options]`` (or ``bench/run <name>``): run one benchmark."""

from __future__ import annotations

import importlib
import sys

BENCHMARKS = {
    "consumer": "bench.consumer",
    "ingest": "bench.ingest",
    "inbox": "bench.inbox",
    "activity_latency": "bench.activity_latency",
    "digests": "bench.digests",
    "burst": "bench.burst",
    "inbox-hq": "bench.inbox_hq",  # the django-notifications-hq half of inbox, own process
}


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in BENCHMARKS:
        print(f"usage: bench/run {{{','.join(BENCHMARKS)}}} [options]   (see bench/README.md)")
        return 2
    module = importlib.import_module(BENCHMARKS[argv[0]])
    return module.main(argv[1:])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
