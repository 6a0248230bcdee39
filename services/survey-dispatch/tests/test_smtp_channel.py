"""The SMTP channel against real SMTP servers (aiosmtpd): pipelined batches on pooled
connections, refusals, a connection the server dropped, and a server without PIPELINING."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from survey_dispatch.channels import PermanentFailure, SmtpChannel, TemporaryFailure
from survey_dispatch.settings import DispatchSettings

from plumbing.processes import free_port
from plumbing.sinks import SmtpSink, read_maildir

pytestmark = pytest.mark.integration


def channel(port: int, connections: int = 3) -> SmtpChannel:
    return SmtpChannel(
        DispatchSettings(smtp_url=f"smtp://127.0.0.1:{port}", smtp_connections=connections)
    )


def message(number: int, body: str = "Bonjour") -> bytes:
    return (
        f"From: enquete@services-publics.example\r\nTo: u{number}@exemple.fr\r\n"
        f"Subject: n{number}\r\nMessage-ID: <m{number}@x>\r\n\r\n{body}\r\n"
    ).encode()


async def test_a_batch_is_pipelined_over_the_pooled_connections_and_every_message_stored(
    sink: SmtpSink,
) -> None:
    smtp = channel(sink.port)
    batch = [(f"u{n}@exemple.fr", message(n)) for n in range(50)]
    assert await smtp.send_many(batch) == [None] * 50
    assert await smtp.send_many(batch[:7]) == [None] * 7  # the same connections, reused
    assert len(smtp._idle) == 3
    assert all(session.pipeline is not None for session in smtp._idle)
    stored = read_maildir(sink.maildir)
    assert sorted(str(m["Subject"]) for m in stored) == sorted(
        [f"n{n}" for n in range(50)] + [f"n{n}" for n in range(7)]
    )
    assert {m["X-Envelope-To"] for m in stored} == {f"u{n}@exemple.fr" for n in range(50)}
    await smtp.close()


async def test_lines_starting_with_a_dot_arrive_intact(sink: SmtpSink) -> None:
    smtp = channel(sink.port, connections=1)
    body = ".une ligne\r\n.\r\n..deux"
    assert await smtp.send_many([("a@exemple.fr", message(1, body))]) == [None]
    [stored] = read_maildir(sink.maildir)
    assert stored.get_content().replace("\r\n", "\n") == body.replace("\r\n", "\n") + "\n"
    await smtp.close()


async def test_refusals_give_temporary_or_permanent_failures_per_message(
    sink: SmtpSink,
) -> None:
    smtp = channel(sink.port, connections=1)
    sink.outage.set(451, count=2)
    outcomes = await smtp.send_many([(f"u{n}@exemple.fr", message(n)) for n in range(4)])
    assert [type(outcome) for outcome in outcomes] == [
        TemporaryFailure, TemporaryFailure, type(None), type(None),
    ]  # fmt: skip
    assert "451" in str(outcomes[0])
    sink.outage.set(554, count=1)
    outcomes = await smtp.send_many([(f"v{n}@exemple.fr", message(n)) for n in range(2)])
    assert isinstance(outcomes[0], PermanentFailure) and outcomes[1] is None
    assert len(read_maildir(sink.maildir)) == 3
    await smtp.close()


async def test_a_refused_recipient_is_reset_and_the_next_message_still_goes(
    tmp_path: Path,
) -> None:
    class RefuseSome:
        def __init__(self) -> None:
            self.received: list[str] = []

        async def handle_RCPT(
            self, server: Any, session: Any, envelope: Any, address: str, options: Any
        ) -> str:
            if address.startswith("refuse"):
                return "550 5.1.1 Destinataire inconnu"
            envelope.rcpt_tos.append(address)
            return "250 OK"

        async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
            self.received.extend(envelope.rcpt_tos)
            return "250 OK"

        async def handle_EHLO(
            self, server: Any, session: Any, envelope: Any, hostname: str, responses: list[str]
        ) -> list[str]:
            session.host_name = hostname
            return [*responses[:-1], "250-PIPELINING", responses[-1]]

    handler = RefuseSome()
    port = free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        smtp = channel(port, connections=1)
        outcomes = await smtp.send_many(
            [("a@exemple.fr", message(1)), ("refuse@exemple.fr", message(2)),
             ("b@exemple.fr", message(3))]
        )  # fmt: skip
        assert outcomes[0] is None and outcomes[2] is None
        assert isinstance(outcomes[1], PermanentFailure) and "550" in str(outcomes[1])
        assert handler.received == ["a@exemple.fr", "b@exemple.fr"]
        await smtp.close()
    finally:
        controller.stop()


async def test_a_connection_the_server_dropped_is_replaced_without_losing_the_batch(
    sink: SmtpSink,
) -> None:
    smtp = channel(sink.port, connections=1)
    assert await smtp.send_many([("a@exemple.fr", message(1))]) == [None]
    [idle] = smtp._idle
    assert idle.pipeline is not None
    idle.pipeline.transport.abort()  # as if the server had closed it while idle
    await asyncio.sleep(0.05)
    assert await smtp.send_many([("b@exemple.fr", message(2)), ("c@exemple.fr", message(3))]) == [
        None,
        None,
    ]
    assert len(read_maildir(sink.maildir)) == 3
    await smtp.close()


async def test_a_server_without_pipelining_gets_one_message_after_the_other(
    tmp_path: Path,
) -> None:
    class Plain:
        def __init__(self) -> None:
            self.received: list[bytes] = []

        async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
            self.received.append(envelope.content)
            return "250 OK"

    handler = Plain()
    port = free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        smtp = channel(port, connections=2)
        assert (
            await smtp.send_many([(f"u{n}@exemple.fr", message(n)) for n in range(5)]) == [None] * 5
        )
        assert all(session.pipeline is None for session in smtp._idle)
        assert len(handler.received) == 5
        await smtp.close()
    finally:
        controller.stop()


async def test_nothing_listening_is_a_temporary_failure_for_every_message(
    tmp_path: Path,
) -> None:
    sink = SmtpSink(tmp_path / "maildir")
    sink.start()
    port = sink.port
    sink.stop()
    outcomes = await channel(port).send_many([("a@exemple.fr", message(1))] * 4)
    assert all(isinstance(outcome, TemporaryFailure) for outcome in outcomes)


def _self_signed(folder: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 and its key, as PEM files."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


async def test_pipelining_continues_on_the_starttls_and_authenticated_connection(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """aiosmtplib upgrades to TLS and logs in; the pipelined session takes over that (TLS)
    transport."""
    import ssl

    from aiosmtpd.smtp import AuthResult

    cert, key = _self_signed(tmp_path)
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))  # the client trusts our certificate
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    logins: list[tuple[str, bool]] = []

    def authenticator(
        server: Any, session: Any, envelope: Any, mechanism: str, data: Any
    ) -> AuthResult:
        logins.append((mechanism, session.ssl is not None))
        ok = data.login == b"relais" and data.password == b"secret"
        return AuthResult(success=ok)

    class Secure:
        def __init__(self) -> None:
            self.received: list[tuple[bool, bool]] = []

        async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
            self.received.append((session.ssl is not None, session.authenticated))
            return "250 OK"

        async def handle_EHLO(
            self, server: Any, session: Any, envelope: Any, hostname: str, responses: list[str]
        ) -> list[str]:
            session.host_name = hostname
            return [*responses[:-1], "250-PIPELINING", responses[-1]]

    handler = Secure()
    port = free_port()
    controller = Controller(
        handler, hostname="127.0.0.1", port=port, tls_context=context, require_starttls=True,
        authenticator=authenticator, auth_require_tls=True,
    )  # fmt: skip
    controller.start()
    try:
        settings = DispatchSettings(
            smtp_url=f"smtp://127.0.0.1:{port}", smtp_connections=2, smtp_starttls=True,
            smtp_username="relais", smtp_password="secret",
        )  # fmt: skip
        smtp = SmtpChannel(settings)
        batch = [(f"u{n}@exemple.fr", message(n)) for n in range(10)]
        assert await smtp.send_many(batch) == [None] * 10
        assert await smtp.send_many(batch[:3]) == [None] * 3
        assert all(session.pipeline is not None for session in smtp._idle)
        assert handler.received == [(True, True)] * 13
        assert logins and all(over_tls for _, over_tls in logins)
        await smtp.close()
    finally:
        controller.stop()


async def test_a_garbled_reply_ends_the_session_and_its_messages_are_retried() -> None:
    async def garbled(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"220 brouille ESMTP\r\n")
        while line := await reader.readline():
            if line.upper().startswith(b"EHLO"):
                writer.write(b"250-brouille\r\n250 PIPELINING\r\n")
            elif line.upper().startswith(b"MAIL"):
                writer.write(b"ceci n'est pas une reponse SMTP\r\n")
            await writer.drain()
        writer.close()

    server = await asyncio.start_server(garbled, "127.0.0.1", 0)
    try:
        smtp = channel(server.sockets[0].getsockname()[1], connections=1)
        outcomes = await smtp.send_many([(f"u{n}@exemple.fr", message(n)) for n in range(3)])
        assert all(isinstance(outcome, TemporaryFailure) for outcome in outcomes)
        assert "malformed reply" in str(outcomes[0])
        assert smtp._idle == []  # the session was dropped, not put back in the pool
    finally:
        server.close()
