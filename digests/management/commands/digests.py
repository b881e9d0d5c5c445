"""``python manage.py digests build|send|run [--period P] [--dry-run] [--now ISO]``.

* ``build`` records the digests owed at ``--now`` (default: now) for each period;
* ``send`` sends queued digests that are due;
* ``run`` does both and writes the schedules' execution history (what beat runs).

``--dry-run`` prints what would be sent and writes nothing, to the database or Redis.
On a terminal a progress line counts users done, sent and skipped; otherwise (logs) each
chunk is one plain line. The last line is always a one-line summary. A bad ``--now`` or
``--period`` exits with status 1 and one line saying what is wrong.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import UTC, datetime

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from digests import preview, runs
from digests.builder import BuildReport, digest_build
from digests.render import plain_text
from digests.sender import Prepared, SendReport, Sent, digest_send
from digests.windows import Period
from notifications.sending import SendCounts

ACTIONS = ("build", "send", "run")
PREVIEW_INDENT = "    "


def parse_now(value: str | None) -> datetime:
    """``--now``: ISO 8601; a time without an offset is UTC."""
    if value is None:
        return timezone.now()
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError:
        raise CommandError(
            f"--now {value!r} is not an ISO 8601 time (e.g. 2026-03-30T09:00:00+02:00)"
        ) from None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed


def parse_periods(value: str | None) -> list[Period]:
    if value is None:
        return list(Period)
    try:
        return [Period(value.strip().lower())]
    except ValueError:
        names = "|".join(p.value for p in Period)
        raise CommandError(f"--period {value!r} is not one of {names}") from None


@dataclass
class Totals:
    """Every period's build and send reports added up, and (dry run) what would be sent."""

    build: BuildReport = field(default_factory=BuildReport)
    send: SendCounts = field(default_factory=SendCounts)
    would_send: int = 0


class Command(BaseCommand):
    help = "Build and send per-user digests (hourly, daily, weekly)."

    def add_arguments(self, parser):
        parser.add_argument("action", nargs="?", help="build | send | run")
        parser.add_argument("--period", help="hourly | daily | weekly (default: all three)")
        parser.add_argument(
            "--dry-run", action="store_true", help="print what would be sent; write nothing"
        )
        parser.add_argument(
            "--now", help="run as if it were this ISO 8601 time (UTC when no offset is given)"
        )

    def handle(self, *args, action=None, period=None, dry_run=False, now=None, **options):
        if action not in ACTIONS:
            raise CommandError(f"say what to do: digests {'|'.join(ACTIONS)} (got {action!r})")
        periods = parse_periods(period)
        as_of = parse_now(now)
        self.tty = self.stdout.isatty()
        started = time.monotonic()
        totals = Totals()
        for each in periods:
            if action == "build":
                self._build(each, as_of, dry_run, totals)
            elif action == "send":
                self._send(each, as_of, dry_run, totals)
            else:
                self._run(each, as_of, dry_run, totals)
        if self.tty:
            self.stdout.write("")
        self.stdout.write(self._summary(action, periods, as_of, dry_run, totals, started))

    # -- phases -----------------------------------------------------------------------------

    def _build(self, period: Period, as_of: datetime, dry_run: bool, totals: Totals) -> None:
        def chunk(done: BuildReport) -> None:
            self._progress(
                f"{period} build: {done.users:,} users done, {done.created:,} digests "
                f"{'to build' if dry_run else 'built'} ({done.empty:,} empty)"
            )

        report = digest_build(period=period, now=as_of, dry_run=dry_run, on_chunk=chunk)
        totals.build.add(report)
        if dry_run:
            for rendered in preview.render_plans(report.queued):
                self._show(rendered, verb="would build")
            totals.would_send += len(report.queued)

    def _send(self, period: Period, as_of: datetime, dry_run: bool, totals: Totals) -> None:
        if dry_run:
            report = digest_send(now=as_of, period=period, dry_run=True)
            for prepared, text in report.previews:
                if prepared.message is not None:
                    self._show_prepared(prepared, text)
                    totals.would_send += 1
            return

        def batch(results: list[Sent], done: SendReport) -> None:
            self._progress(f"{period} send: {done.text()}")

        totals.send.merge(digest_send(now=as_of, period=period, on_batch=batch))

    def _run(self, period: Period, as_of: datetime, dry_run: bool, totals: Totals) -> None:
        def progress(state: runs.Progress) -> None:
            send = state.send
            self._progress(
                f"{period} {state.phase}: {state.build.users:,} users done, {send.sent:,} sent, "
                f"{send.skipped:,} skipped, {send.failed:,} failed"
            )

        summary = runs.digest_run(period=period, now=as_of, dry_run=dry_run, progress=progress)
        totals.build.add(summary.build)
        totals.send.merge(summary.send)
        if dry_run:
            for rendered in summary.rendered:
                self._show(rendered, verb="would send")
            for prepared, text in summary.previews:
                self._show_prepared(prepared, text)
            totals.would_send += summary.would_send

    # -- output -----------------------------------------------------------------------------

    def _progress(self, text: str) -> None:
        if self.tty:
            self.stdout.write(f"\r\033[K{text}", ending="")
            self.stdout.flush()
        else:
            self.stdout.write(f"digests: {text}")

    def _show(self, rendered: preview.Rendered, *, verb: str) -> None:
        text = plain_text(rendered.message) if rendered.message else ""
        self.stdout.write(
            f"{verb} {rendered.channel} digest to {rendered.username} · "
            f"{rendered.window.period} {rendered.window.label()} ({rendered.window.tz}) · "
            f"{rendered.view.item_count} items · {rendered.key}"
        )
        self._indent(text)

    def _show_prepared(self, prepared: Prepared, text: str) -> None:
        where = prepared.destination.address if prepared.destination else prepared.skip_reason
        self.stdout.write(
            f"would send {prepared.channel} digest to user {prepared.user_id} ({where}) · "
            f"{prepared.period} · {prepared.key}"
        )
        self._indent(text)

    def _indent(self, text: str) -> None:
        for line in text.splitlines():
            self.stdout.write(f"{PREVIEW_INDENT}{line}" if line else "")

    def _summary(self, action, periods, as_of, dry_run, totals: Totals, started) -> str:
        names = ",".join(p.value for p in periods)
        seconds = time.monotonic() - started
        head = f"digests {action} {names} as of {as_of.isoformat()}"
        built = totals.build
        if dry_run:
            return (
                f"{head}: {built.users:,} users, {built.created:,} digests to build "
                f"({built.empty:,} empty), {totals.would_send:,} would be sent "
                f"in {seconds:.2f}s [dry run: nothing written]"
            )
        parts = []
        if action in ("build", "run"):
            parts.append(
                f"{built.users:,} users, {built.created:,} digests built ({built.empty:,} empty)"
            )
        if action in ("send", "run"):
            parts.append(totals.send.text())
        return f"{head}: {', '.join(parts)} in {seconds:.2f}s"
