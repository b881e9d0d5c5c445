"""Email channel: text + HTML mail through Django's email backend (SMTP in production).

The SMTP server and credentials are Django settings (``EMAIL_URL`` → ``EMAIL_HOST`` …), read
when a message is sent; the recipient is ``destination.address``. :meth:`EmailChannel.send_many`
sends a batch over one SMTP connection — a digest run of hundreds of mails should not open
hundreds of connections — and still gives every message its own :class:`Outcome`.

SMTP answers map by their class: 4xx (``421`` service not available, ``450`` mailbox busy…),
refused or dropped connections and timeouts are worth a retry; 5xx (``550`` no such user,
``554`` rejected…) fail for good.

``EMAIL_TIMEOUT`` bounds each socket operation only; a server that answers byte by byte
would hold the sender for as long as it likes. So each message (connecting when needed,
then MAIL/RCPT/DATA) runs under an overall :class:`~notifications.channels.deadline.Deadline`,
and a whole batch — closing included — under ``batch_deadline``. A message that hits a
deadline is a retry, and so is every message of the batch not tried yet: a server that slow
is not given one more deadline per message. The user's text is escaped by the HTML template
(autoescape); the plain-text part carries it verbatim.
"""

from __future__ import annotations

import smtplib
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, ClassVar

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.mail import BadHeaderError, EmailMultiAlternatives, get_connection, make_msgid
from django.core.mail.utils import DNS_NAME
from django.core.validators import validate_email
from django.template.loader import render_to_string

from notifications.channels import base
from notifications.channels.base import Destination, Message, Outcome
from notifications.channels.deadline import CALL_DEADLINE, Deadline, DeadlineExceeded

TYPE = "email"
TEXT_TEMPLATE = "notifications/email/message.txt"
HTML_TEMPLATE = "notifications/email/message.html"


@dataclass(frozen=True)
class EmailLimits:
    """Mail has no hard size limit that matters here; a summary still shows at most
    ``max_lines`` lines so a digest of thousands stays readable."""

    max_lines: int = 100
    max_subject_chars: int = 200


# A digest batch (100 mails) must end well inside the digest sender's claim lease.
BATCH_DEADLINE = Deadline(240.0)


def render_context(message: Message, limits: EmailLimits) -> dict[str, Any]:
    shown = list(message.lines[: limits.max_lines])
    omitted = len(message.lines) - len(shown)
    return {
        "title": message.title,
        "body": message.body,
        "url": message.url,
        "lines": shown,
        "omitted": omitted,
        "omitted_display": f"{omitted:,}",
        "count": message.count,
        "footer": message.footer,
        "team_name": message.team_name,
        "unsubscribe_url": message.unsubscribe_url,
    }


def subject_for(message: Message, limits: EmailLimits) -> str:
    """One line: header injection is impossible and long titles are shortened."""
    subject = " ".join(message.title.split())
    if message.team_name:
        subject = f"[{' '.join(message.team_name.split())}] {subject}"
    if len(subject) > limits.max_subject_chars:
        subject = subject[: limits.max_subject_chars - 1] + "…"
    return subject


def build_email(
    message: Message, destination: Destination, limits: EmailLimits = EmailLimits()
) -> EmailMultiAlternatives:
    """The mail for one recipient: text body, HTML alternative, ``Message-ID`` set up front
    (it becomes the outcome's ``provider_id``) and the one-click unsubscribe headers
    (RFC 8058) when the message has an unsubscribe URL. A message that brings its own
    ``text``/``html`` (a digest) is sent as rendered."""
    context = render_context(message, limits)
    headers: dict[str, str] = {"Message-ID": make_msgid(domain=DNS_NAME)}
    headers.update(message.headers)
    if message.unsubscribe_url:
        headers["List-Unsubscribe"] = f"<{message.unsubscribe_url}>"
        headers["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    mail = EmailMultiAlternatives(
        subject=subject_for(message, limits),
        body=message.text or render_to_string(TEXT_TEMPLATE, context),
        from_email=settings.DEFAULT_FROM_EMAIL,
        to=[destination.address],
        headers=headers,
    )
    mail.attach_alternative(message.html or render_to_string(HTML_TEMPLATE, context), "text/html")
    return mail


def _reply_outcome(code: int, reply: bytes | str, what: str) -> Outcome:
    """Only a 5xx reply is a verdict. A 4xx asks for a retry; anything that is no reply
    code at all (smtplib reads ``25`` from a ``250`` cut off by a reset, or ``-1``) is an
    answer that did not arrive whole, and worth a retry too."""
    text = reply.decode("utf-8", "replace") if isinstance(reply, bytes) else str(reply)
    detail = f"smtp: {what} {code} {text}".strip()
    if not _is_reply_code(code):
        return Outcome.retry(f"smtp: the server's answer was cut off ({detail})")
    return Outcome.failed(detail) if code >= 500 else Outcome.retry(detail)


def _is_reply_code(code: int) -> bool:
    return 200 <= code < 600


def _unusable_after(code: int) -> bool:
    """The connection cannot carry another message after this reply: ``421`` closes it,
    and after a garbled reply the dialogue is out of step."""
    return code == 421 or not _is_reply_code(code)


def outcome_for(exc: Exception) -> tuple[Outcome, bool]:
    """Map an SMTP/connection error to an outcome, and say whether the connection is
    unusable afterwards (then the batch reconnects before the next message)."""
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        code, reply = next(iter(exc.recipients.values()), (550, b"recipient refused"))
        return _reply_outcome(code, reply, "recipient refused"), _unusable_after(code)
    if isinstance(exc, smtplib.SMTPResponseException):
        # Sender refused, data refused, authentication failed, …: the reply code decides.
        return _reply_outcome(exc.smtp_code, exc.smtp_error, "server answered"), _unusable_after(
            exc.smtp_code
        )
    if isinstance(exc, DeadlineExceeded):
        return Outcome.retry(f"smtp: {exc}"), True
    if isinstance(exc, smtplib.SMTPServerDisconnected):
        return Outcome.retry(f"smtp: server closed the connection ({exc})"), True
    if isinstance(exc, TimeoutError):
        return Outcome.retry("smtp: no answer before EMAIL_TIMEOUT"), True
    if isinstance(exc, ValueError):  # BadHeaderError, or an address Django cannot encode
        return Outcome.failed(f"smtp: {exc}"), False
    if isinstance(exc, smtplib.SMTPException):
        return Outcome.failed(f"smtp: {type(exc).__name__}: {exc}"), True
    if isinstance(exc, OSError):
        return Outcome.retry(f"smtp: cannot reach the server ({type(exc).__name__}: {exc})"), True
    raise exc


_NO_ADDRESS = Outcome.failed("no email address for this recipient")
_TOO_SLOW = Outcome.retry("smtp: not tried, the server was too slow for an earlier message")


def _close_quietly(connection: Any) -> None:
    try:
        connection.close()
    except (smtplib.SMTPException, OSError):
        pass  # a failed QUIT changes nothing about messages already sent or recorded


class EmailChannel:
    """Send notification mail through Django's configured email backend; each message
    within ``deadline``, a :meth:`send_many` batch within ``batch_deadline``."""

    type: ClassVar[str] = TYPE

    def __init__(
        self,
        *,
        limits: EmailLimits = EmailLimits(),
        deadline: Deadline = CALL_DEADLINE,
        batch_deadline: Deadline = BATCH_DEADLINE,
    ) -> None:
        self.limits = limits
        self.deadline = deadline
        self.batch_deadline = batch_deadline

    def send(self, message: Message, destination: Destination) -> Outcome:
        """One message, connection and QUIT included, within ``deadline``."""
        return self._send_all([(message, destination)], budget=self.deadline)[0]

    def send_many(
        self, messages_with_destinations: Iterable[tuple[Message, Destination]]
    ) -> list[Outcome]:
        """Send every (message, destination) pair over one connection; the outcomes come
        back in the same order. A refused recipient affects only its own message. When the
        server drops the connection (421, timeout, disconnect) the batch reconnects once per
        drop; if the server cannot be reached, or a deadline passes, every message still
        unsent gets ``retry``."""
        return self._send_all(list(messages_with_destinations), budget=self.batch_deadline)

    def _send_all(
        self, pairs: list[tuple[Message, Destination]], *, budget: Deadline
    ) -> list[Outcome]:
        outcomes: list[Outcome] = []
        if not pairs:
            return outcomes

        def the_rest(outcome: Outcome) -> list[Outcome]:
            rest = pairs[len(outcomes) :]
            return [outcome if later.address.strip() else _NO_ADDRESS for _, later in rest]

        connection = get_connection(fail_silently=False)
        needs_open = True
        with budget.enforce() as whole:
            try:
                for message, destination in pairs:
                    if whole.expired:
                        outcomes.extend(the_rest(_TOO_SLOW))
                        break
                    if not destination.address.strip():
                        outcomes.append(_NO_ADDRESS)
                        continue
                    try:
                        mail = build_email(message, destination, self.limits)
                    except BadHeaderError as exc:
                        outcomes.append(Outcome.failed(f"smtp: {exc}"))
                        continue
                    opening = needs_open
                    try:
                        with self.deadline.enforce():
                            if needs_open:
                                connection.open()
                                needs_open = False
                            connection.send_messages([mail])
                    except Exception as exc:
                        late = whole.expired or isinstance(exc, DeadlineExceeded)
                        outcome, broken = outcome_for(
                            DeadlineExceeded(budget.seconds) if whole.expired else exc
                        )
                        if opening and needs_open:  # the server cannot be reached
                            outcomes.extend(the_rest(outcome))
                            break
                        outcomes.append(outcome)
                        if late:
                            outcomes.extend(the_rest(_TOO_SLOW))
                            break
                        if broken:
                            _close_quietly(connection)
                            needs_open = True
                        continue
                    outcomes.append(Outcome.sent(provider_id=mail.extra_headers["Message-ID"]))
            finally:
                _close_quietly(connection)
        return outcomes


def address_problem(address: str) -> str | None:
    try:
        validate_email(address)
    except ValidationError:
        return "must be an email address"
    return None


DECLARATION = base.ChannelDeclaration(
    type=TYPE,
    label="Email",
    noun="emails",
    sender=EmailChannel,
    target=base.Target(
        "Email address (optional)", "each subscriber's own address", check=address_problem
    ),
    to_people=True,
    to_each_subscriber=True,
    address_field="email",
)
