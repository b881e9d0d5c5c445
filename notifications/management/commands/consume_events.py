"""``python manage.py consume_events``: run the consumer group until SIGTERM or Ctrl-C."""

from __future__ import annotations

import gc
import signal
import threading

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from notifications import metrics, stream
from notifications.consumers import BatchPolicy, ConsumerLoop
from notifications.processing import EventProcessor
from notifications.stream import TopicName

MAX_BATCH_SIZE = 10_000
"""Records per poll: a batch is one transaction, and its rows are held in memory."""


class Command(BaseCommand):
    help = "Consume notification events from Kafka, evaluate triggers, store notifications."

    def add_arguments(self, parser):
        parser.add_argument(
            "--until-idle",
            action="store_true",
            help="exit once every assigned partition is read to its end (backfills, tests)",
        )
        parser.add_argument(
            "--batch-size",
            type=int,
            default=BatchPolicy.max_records,
            help=f"records per poll, 1 to {MAX_BATCH_SIZE:,} (default {BatchPolicy.max_records:,})",
        )
        parser.add_argument(
            "--metrics-port",
            type=int,
            default=None,
            help="serve Prometheus /metrics on 127.0.0.1 at this port, 0 for none "
            "(default NOTIFLOW_CONSUMER_METRICS_PORT)",
        )

    def handle(
        self,
        *args,
        until_idle=False,
        batch_size=BatchPolicy.max_records,
        metrics_port=None,
        **options,
    ):
        if not 1 <= batch_size <= MAX_BATCH_SIZE:
            raise CommandError(f"--batch-size {batch_size} must be from 1 to {MAX_BATCH_SIZE:,}")
        port = settings.NOTIFLOW_CONSUMER_METRICS_PORT if metrics_port is None else metrics_port
        if not 0 <= port <= 65_535:
            raise CommandError(f"--metrics-port {port} must be from 0 to 65535")
        if port:  # before Kafka: a taken port is refused in one line, broker or not
            try:
                metrics.serve_consumer(port)
            except OSError as exc:
                raise CommandError(
                    f"cannot serve metrics on 127.0.0.1:{port} ({exc.strerror or exc}); "
                    "set NOTIFLOW_CONSUMER_METRICS_PORT (or --metrics-port) to a free port, "
                    "or 0 for none"
                ) from exc
            self.stdout.write(f"metrics on http://127.0.0.1:{port}/metrics")
        stream.require_broker()
        stream.ensure_topics()
        stop = threading.Event()

        def request_stop(signum, frame):
            self.stderr.write(f"{signal.Signals(signum).name}: finishing the batch, then leaving")
            stop.set()

        signal.signal(signal.SIGTERM, request_stop)
        signal.signal(signal.SIGINT, request_stop)
        consumer = stream.build_consumer()
        producer = stream.build_producer()
        loop = ConsumerLoop(
            consumer, producer, EventProcessor(), BatchPolicy(max_records=batch_size)
        )
        self.stdout.write(
            f"consuming {stream.topic(TopicName.EVENTS)} as group {stream.consumer_group()}"
        )
        # Everything loaded so far lives as long as the process: keep the cyclic collector
        # from walking it again on every full collection (a fifth of decoding's cost).
        gc.freeze()
        try:
            total = loop.run(stop, until_idle=until_idle)
        finally:
            producer.close(timeout=5)
            consumer.close()
        self.stdout.write(
            f"stopped: {total.events} events, {total.dead_lettered} dead-lettered, "
            f"{total.stored} notifications stored"
        )
