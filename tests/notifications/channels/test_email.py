"""Email specifics: unsubscribe headers, text + HTML parts, one SMTP connection per batch."""

from __future__ import annotations

import time

import pytest

from notifications.channels.base import Destination, Message, Result
from notifications.channels.deadline import Deadline
from notifications.channels.email import EmailChannel, build_email
from tests.servers import free_port

UNSUBSCRIBE = "https://notiflow.example/unsubscribe/abc123"


def message(**fields) -> Message:
    defaults = {
        "title": "Your insight crossed its limit",
        "body": "Signups per day went above 500.",
        "url": "https://notiflow.example/notifications/9",
        "unsubscribe_url": UNSUBSCRIBE,
    }
    return Message(**{**defaults, **fields})


def test_subject_is_one_line_even_when_the_title_is_not():
    mail = build_email(
        message(title="line one\r\nBcc: victim@example.com", team_name="Growth"),
        Destination("ada@example.com"),
    )

    assert mail.subject == "[Growth] line one Bcc: victim@example.com"


def test_no_unsubscribe_headers_without_an_unsubscribe_url():
    mail = build_email(message(unsubscribe_url=""), Destination("ada@example.com"))

    assert "List-Unsubscribe" not in mail.extra_headers


@pytest.mark.integration
class TestAgainstTheLocalSMTPServer:
    def test_one_click_unsubscribe_headers(self, smtp_server):
        outcome = EmailChannel().send(message(), Destination("ada@example.com"))

        assert outcome.result is Result.SENT, outcome.detail
        received = smtp_server.messages[0].message
        assert received["List-Unsubscribe"] == f"<{UNSUBSCRIBE}>"
        assert received["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        assert received["Message-ID"] == outcome.provider_id

    def test_text_and_html_parts_with_a_link(self, smtp_server):
        EmailChannel().send(
            message(body="Tom <b>& Jerry", lines=["a <i>", "b"]), Destination("ada@example.com")
        )

        mail = smtp_server.messages[0]
        assert mail.message.get_content_type() == "multipart/alternative"
        assert mail.rcpt_tos == ["ada@example.com"]
        text, html = mail.part("text/plain"), mail.part("text/html")
        assert "Tom <b>& Jerry" in text
        assert "View it in notiflow: https://notiflow.example/notifications/9" in text
        assert "Tom &lt;b&gt;&amp; Jerry" in html
        assert "<li>a &lt;i&gt;</li>" in html
        assert 'href="https://notiflow.example/notifications/9"' in html
        assert f'href="{UNSUBSCRIBE}"' in html

    def test_a_batch_of_20_uses_one_connection(self, smtp_server):
        batch = [
            (message(title=f"Digest {i}"), Destination(f"user{i}@example.com")) for i in range(20)
        ]

        outcomes = EmailChannel().send_many(batch)

        assert [o.result for o in outcomes] == [Result.SENT] * 20
        assert len(smtp_server.messages) == 20
        assert smtp_server.connections == 1
        assert len({mail.peer for mail in smtp_server.messages}) == 1
        assert [m.rcpt_tos[0] for m in smtp_server.messages] == [d.address for _, d in batch]

    def test_a_refused_recipient_fails_alone(self, smtp_server):
        smtp_server.refuse("gone@example.com")
        batch = [
            (message(), Destination("a@example.com")),
            (message(), Destination("gone@example.com")),
            (message(), Destination("b@example.com")),
        ]

        outcomes = EmailChannel().send_many(batch)

        assert [o.result for o in outcomes] == [Result.SENT, Result.FAILED, Result.SENT]
        assert "550" in outcomes[1].detail
        assert smtp_server.connections == 1

    def test_a_421_mid_batch_is_retried_and_the_batch_reconnects(self, smtp_server):
        batch = [(message(), Destination(f"u{i}@example.com")) for i in range(3)]
        channel = EmailChannel()
        channel.send_many(batch[:1])
        smtp_server.connections = 0
        smtp_server.answer_next("421 4.7.0 Try again later")

        outcomes = channel.send_many(batch)

        assert [o.result for o in outcomes] == [Result.RETRY, Result.SENT, Result.SENT]
        assert outcomes[0].retry_after is None
        assert smtp_server.connections == 2

    def test_a_message_past_its_deadline_ends_the_batch_and_the_rest_retry_untried(
        self, smtp_server
    ):
        smtp_server.drip_next(0.05)  # the greeting alone takes 2 s
        batch = [(message(), Destination(f"u{i}@example.com")) for i in range(3)]

        outcomes = EmailChannel(deadline=Deadline(1.5)).send_many(batch)

        assert [o.result for o in outcomes] == [Result.RETRY] * 3
        assert "within 1.5s" in outcomes[0].detail
        assert all("not tried" in o.detail for o in outcomes[1:])
        assert smtp_server.connections == 1

    def test_a_batch_ends_by_its_own_deadline_however_quick_each_message(self, smtp_server):
        smtp_server.drip_next(0.01)  # about a second per message, every reply dripped
        batch = [(message(), Destination(f"u{i}@example.com")) for i in range(8)]
        started = time.monotonic()

        outcomes = EmailChannel(deadline=Deadline(10), batch_deadline=Deadline(3)).send_many(batch)

        assert time.monotonic() - started < 3 + 2
        results = [o.result for o in outcomes]
        first_unsent = results.index(Result.RETRY)
        assert results[first_unsent:] == [Result.RETRY] * (len(batch) - first_unsent)
        assert "not tried" in outcomes[-1].detail
        assert len(smtp_server.messages) <= first_unsent + 1

    def test_missing_address_fails_without_touching_the_others(self, smtp_server):
        outcomes = EmailChannel().send_many(
            [(message(), Destination("")), (message(), Destination("a@example.com"))]
        )

        assert [o.result for o in outcomes] == [Result.FAILED, Result.SENT]

    def test_server_not_listening_retries_every_message(self, settings):
        settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
        settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", free_port()
        settings.EMAIL_TIMEOUT = 1

        outcomes = EmailChannel().send_many(
            [(message(), Destination(f"u{i}@example.com")) for i in range(3)]
        )

        assert [o.result for o in outcomes] == [Result.RETRY] * 3
        assert "cannot reach the server" in outcomes[0].detail


@pytest.mark.integration
def test_an_address_django_cannot_encode_fails(smtp_server):
    outcomes = EmailChannel().send_many(
        [(message(), Destination("not an address@")), (message(), Destination("a@example.com"))]
    )

    assert outcomes[0].result is Result.FAILED
    assert outcomes[1].result is Result.SENT
