"""The devstack's SMTP sink: every accepted message stored in the maildir, addresses parsed as
aiosmtpd parses them (its shortcut for plain addresses changes nothing), a clean QUIT."""

from __future__ import annotations

import asyncio
import time

import aiosmtplib
import pytest

from plumbing.sinks import SmtpSink, read_maildir

pytestmark = pytest.mark.integration

MESSAGE = b"Subject: essai\r\n\r\nBonjour\r\n"


async def test_plain_quoted_and_refused_addresses(sink: SmtpSink) -> None:
    client = aiosmtplib.SMTP(hostname="127.0.0.1", port=sink.port)
    await client.connect()
    assert client.supports_extension("pipelining")
    await client.sendmail("enquete@services-publics.example", ["marie.curie@exemple.fr"], MESSAGE)
    await client.sendmail("a@b.example", ['"jean dupont"@exemple.fr'], MESSAGE)  # the parser
    await client.mail("a@b.example")
    with pytest.raises(aiosmtplib.SMTPRecipientRefused) as refused:
        await client.rcpt("x@@exemple.fr")
    assert refused.value.code == 553
    await client.rset()
    code, _ = await client.quit()
    assert code == 221
    stored = read_maildir(sink.maildir)
    assert [message["X-Envelope-To"] for message in stored] == [
        "marie.curie@exemple.fr",
        '"jean dupont"@exemple.fr',
    ]
    assert all(message["Subject"] == "essai" for message in stored)


async def test_an_outage_refuses_and_stores_nothing(sink: SmtpSink) -> None:
    sink.outage.set(451, count=1)
    client = aiosmtplib.SMTP(hostname="127.0.0.1", port=sink.port)
    await client.connect()
    with pytest.raises(aiosmtplib.SMTPDataError) as refused:
        await client.sendmail("a@b.example", ["c@d.example"], MESSAGE)
    assert refused.value.code == 451
    await client.sendmail("a@b.example", ["c@d.example"], MESSAGE)
    await client.quit()
    assert len(read_maildir(sink.maildir)) == 1


async def test_a_marked_recipient_is_refused_with_its_address_quoted(sink: SmtpSink) -> None:
    """Like a real relay's 550 5.1.1, which quotes the address: what dispatch must not keep."""
    sink.refused_recipients.add("inconnu@exemple.fr")
    client = aiosmtplib.SMTP(hostname="127.0.0.1", port=sink.port)
    await client.connect()
    await client.mail("a@b.example")
    with pytest.raises(aiosmtplib.SMTPRecipientRefused) as refused:
        await client.rcpt("Inconnu@exemple.fr")
    assert refused.value.code == 550
    assert "5.1.1 <Inconnu@exemple.fr>" in refused.value.message
    await client.rset()
    await client.sendmail("a@b.example", ["connu@exemple.fr"], MESSAGE)
    await client.quit()
    assert [m["X-Envelope-To"] for m in read_maildir(sink.maildir)] == ["connu@exemple.fr"]


async def test_a_frozen_sink_accepts_connections_then_hangs_until_the_freeze_ends(
    sink: SmtpSink,
) -> None:
    """The chaos run's hung relay: the TCP connection opens, no greeting comes (a client with a
    short timeout gives up); a message whose DATA was read while frozen is stored, its reply
    withheld (that client would send it again); once the freeze ends, sessions go on."""
    client = aiosmtplib.SMTP(hostname="127.0.0.1", port=sink.port, timeout=10)
    await client.connect()
    await client.mail("a@b.example")
    await client.rcpt("pendant@exemple.fr")
    sink.freeze(1.5)
    assert sink.frozen
    impatient = aiosmtplib.SMTP(hostname="127.0.0.1", port=sink.port, timeout=0.5)
    with pytest.raises(aiosmtplib.SMTPTimeoutError):
        await impatient.connect()  # accepted by the kernel, but no 220 comes
    started = asyncio.get_running_loop().time()
    code, _ = await client.data(MESSAGE)  # read and stored at once, answered after the freeze
    assert code == 250
    assert asyncio.get_running_loop().time() - started > 0.5
    assert not sink.frozen
    assert sink.stored == 1
    await client.sendmail("a@b.example", ["apres@exemple.fr"], MESSAGE)
    await client.quit()
    assert [m["X-Envelope-To"] for m in read_maildir(sink.maildir)] == [
        "pendant@exemple.fr",
        "apres@exemple.fr",
    ]


async def test_a_freeze_armed_for_the_next_message_withholds_that_messages_reply(
    sink: SmtpSink,
) -> None:
    """The chaos run's hung relay with a message certainly in flight: the freeze starts when the
    next message is stored, so its sender (timeout shorter than the freeze) gives up on a
    message the relay has, and will send it again."""
    sink.freeze(1.5, after_next_message=True)
    assert sink.freeze_armed and not sink.frozen
    client = aiosmtplib.SMTP(hostname="127.0.0.1", port=sink.port, timeout=0.5)
    await client.connect()  # not frozen yet: the greeting comes
    await client.mail("a@b.example")
    await client.rcpt("en-vol@exemple.fr")
    with pytest.raises(aiosmtplib.SMTPTimeoutError):
        await client.data(MESSAGE)  # stored, then the relay hangs before its 250
    assert sink.frozen and not sink.freeze_armed
    assert sink.stored == 1
    client.close()
    await asyncio.sleep(max(0.0, sink.frozen_until - time.monotonic()))
    late = aiosmtplib.SMTP(hostname="127.0.0.1", port=sink.port, timeout=5)
    await late.connect()
    await late.sendmail("a@b.example", ["en-vol@exemple.fr"], MESSAGE)  # the resend
    await late.quit()
    assert [m["X-Envelope-To"] for m in read_maildir(sink.maildir)] == ["en-vol@exemple.fr"] * 2
