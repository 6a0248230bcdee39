"""Local stand-ins for the outside world we cannot run: an SMTP server and an SMS provider.

The SMTP sink is a real SMTP server (aiosmtpd) writing a maildir a person can open.
The SMS gateway speaks the provider API the SMS adapter uses:
`POST /v1/messages` with `Authorization: Bearer <token>` and JSON `{to, sender, text}`,
answering `201 {"id": ...}`. Both can be told to refuse for a while, to test retries, and the
SMTP sink to freeze (`SmtpSink.freeze`): a relay that accepts connections and then hangs.
"""

from __future__ import annotations

import asyncio
import email
import email.policy
import json
import mailbox
import os
import re
import socket
import threading
import time
import uuid
from dataclasses import dataclass, field
from email.message import EmailMessage
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from plumbing import processes


@dataclass
class Outage:
    """Refuse with `status` until `until` (monotonic clock) or for the next `count` requests."""

    status: int = 0
    until: float = 0.0
    count: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def set(self, status: int, *, seconds: float = 0.0, count: int = 0) -> None:
        with self._lock:
            self.status = status
            self.until = time.monotonic() + seconds if seconds else 0.0
            self.count = count

    def take(self) -> int:
        """The status to refuse with now, or 0 to accept."""
        with self._lock:
            if self.until and time.monotonic() < self.until:
                return self.status
            if self.count > 0:
                self.count -= 1
                return self.status
            return 0


class _MaildirHandler:
    def __init__(self, sink: SmtpSink) -> None:
        self.sink = sink

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        refusal = self.sink.outage.take()
        if refusal:
            return f"{refusal} 4.3.2 Service temporairement indisponible, réessayez"
        # Raw bytes, no parse and re-serialise: the sink must not be the bottleneck of a bench.
        recipients = ", ".join(envelope.rcpt_tos).encode()
        self.sink.store(b"X-Envelope-To: " + recipients + b"\r\n" + envelope.content)
        self.sink.freeze_if_armed()  # its own 250 is then withheld: the sender will resend it
        return "250 Message accepted for delivery"

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, rcpt_options: list[str]
    ) -> str:
        """Refuse the addresses a test marked, quoting them as real relays do."""
        if address.lower() in self.sink.refused_recipients:
            return f"550 5.1.1 <{address}>: Recipient address rejected: User unknown"
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        return "250 OK"

    async def handle_EHLO(
        self, server: Any, session: Any, envelope: Any, hostname: str, responses: list[str]
    ) -> list[str]:
        """Advertise PIPELINING (RFC 2920): aiosmtpd reads commands in order from a buffered
        stream and answers each in turn, which is all a pipelining client needs."""
        session.host_name = hostname
        return [*responses[:-1], "250-PIPELINING", responses[-1]]


class SmtpSink:
    def __init__(self, maildir: Path) -> None:
        self.maildir = maildir
        mailbox.Maildir(maildir, create=True)  # tmp/, new/, cur/
        self.lock = threading.Lock()
        self.outage = Outage()
        self.refused_recipients: set[str] = set()  # lower-case; answered 550 5.1.1 at RCPT
        self.port = 0
        self.frozen_until = 0.0  # monotonic clock; see `freeze`
        self._freeze_armed = 0.0  # seconds of a freeze waiting for the next message stored
        self._controller: Any = None
        self._count = 0
        self._suffix = f".P{os.getpid()}.{socket.gethostname().replace('/', '_')}"

    def store(self, raw: bytes) -> None:
        """Deliver one message the maildir way (write in tmp/, rename into new/), without the
        fsync `mailbox.Maildir.add` does per message: a dev and test sink on a machine whose
        PostgreSQL runs with fsync off, where that fsync made the sink the bottleneck of a
        bench. Names sort in arrival order."""
        with self.lock:
            self._count += 1
            name = f"{time.time_ns():020d}.Q{self._count:09d}{self._suffix}"
        temporary = os.path.join(self.maildir, "tmp", name)
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        try:
            view = memoryview(raw)
            while view:
                view = view[os.write(descriptor, view) :]
        finally:
            os.close(descriptor)
        os.rename(temporary, os.path.join(self.maildir, "new", name))

    def freeze(self, seconds: float, *, after_next_message: bool = False) -> None:
        """Hang for `seconds`, as a stuck relay does: connections are still accepted, but no
        reply leaves (not the greeting, not the answer to a command already read, a DATA
        already stored included) until the freeze ends; then every session goes on. A client
        that gave up meanwhile has its message stored all the same, so it may send it again.

        `after_next_message`: the freeze starts the moment the next message is stored, before
        its 250 leaves, so at least one message is certainly in flight when the relay hangs
        (a client whose timeout is shorter than the freeze gives up on a stored message)."""
        with self.lock:
            if after_next_message:
                self._freeze_armed = seconds
            else:
                self.frozen_until = time.monotonic() + seconds

    def freeze_if_armed(self) -> None:
        """Start the freeze `freeze(after_next_message=True)` armed, if any."""
        with self.lock:
            if self._freeze_armed:
                self.frozen_until = time.monotonic() + self._freeze_armed
                self._freeze_armed = 0.0

    @property
    def freeze_armed(self) -> bool:
        return bool(self._freeze_armed)

    @property
    def frozen(self) -> bool:
        return time.monotonic() < self.frozen_until

    @property
    def stored(self) -> int:
        """How many messages were stored since the start."""
        with self.lock:
            return self._count

    def start(self) -> None:
        self.port = processes.free_port()
        self._controller = _controller(_MaildirHandler(self), self.port)
        self._controller.start()

    def stop(self) -> None:
        if self._controller:
            self._controller.stop()
            self._controller = None

    @property
    def thread_id(self) -> int:
        """The native id of the thread serving SMTP (for CPU accounting in benchmarks)."""
        thread = getattr(self._controller, "_thread", None)
        if thread is None or thread.native_id is None:
            raise RuntimeError("the SMTP sink is not running")
        return int(thread.native_id)

    def messages(self) -> list[EmailMessage]:
        return read_maildir(self.maildir)


# A plain <dot-atom@domain> address, what nearly every MAIL FROM and RCPT TO carries.
_PLAIN_ADDRESS = re.compile(
    r"\s*<(?P<local>[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*)"
    r"@(?P<domain>[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*)>(?P<rest>.*)"
)


def _controller(handler: _MaildirHandler, port: int) -> Any:
    """An aiosmtpd controller on uvloop whose SMTP sessions take two shortcuts a busy sink
    needs, with aiosmtpd's behaviour otherwise: a plain address skips the RFC 5322 parser, and
    the replies to pipelined commands read in one go leave in one write."""
    from aiosmtpd.controller import Controller
    from aiosmtpd.smtp import SMTP

    class SinkSMTP(SMTP):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self._replies: list[bytes] = []

        def _getaddr(self, arg: str) -> tuple[str | None, str | None]:
            plain = _PLAIN_ADDRESS.fullmatch(arg)
            if plain is None or (
                self.local_part_limit and len(plain["local"]) > self.local_part_limit
            ):
                return super()._getaddr(arg)
            return f"{plain['local']}@{plain['domain']}", plain["rest"]

        async def push(self, status: str | bytes) -> None:
            sink = self.event_handler.sink
            if (left := sink.frozen_until - time.monotonic()) > 0:  # SmtpSink.freeze
                await asyncio.sleep(left)
            if isinstance(status, str):
                status = status.encode("utf-8" if self.enable_SMTPUTF8 else "ascii")
            self._replies.append(status + b"\r\n")
            if status[:3] in (b"221", b"421"):  # the connection is closed right after
                self._flush()
            elif len(self._replies) == 1:  # sent once the commands read so far are answered
                asyncio.get_running_loop().call_soon(self._flush)

        def _flush(self) -> None:
            if self._replies and self.transport is not None and not self.transport.is_closing():
                self._writer.write(b"".join(self._replies))
            self._replies.clear()

    class SinkController(Controller):
        def factory(self) -> SMTP:
            return SinkSMTP(self.handler, **self.SMTP_kwargs)

    return SinkController(
        handler, loop=_new_event_loop(), hostname="127.0.0.1", port=port, ready_timeout=10
    )


def _new_event_loop() -> asyncio.AbstractEventLoop:
    """uvloop when installed (it comes with uvicorn[standard]): the sink's thread then spends
    far less time in the event loop itself."""
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


def read_maildir(maildir: Path) -> list[EmailMessage]:
    """Messages in arrival order, parsed with the modern email API."""
    box = mailbox.Maildir(maildir, create=False)
    found = []
    for key in box.iterkeys():
        path = Path(maildir) / ("new" if (Path(maildir) / "new" / key).exists() else "cur") / key
        found.append((path.stat().st_mtime_ns, key))
    messages = []
    for _, key in sorted(found):
        raw = box.get_bytes(key)
        parsed = email.message_from_bytes(raw, policy=email.policy.default)
        assert isinstance(parsed, EmailMessage)
        messages.append(parsed)
    return messages


class SmsGateway:
    """A local HTTP SMS provider that records messages in a JSON-lines file."""

    def __init__(self, log_path: Path, token: str = "dev-sms-token") -> None:
        self.log_path = log_path
        self.token = token
        self.outage = Outage()
        self.port = 0
        self.lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        gateway = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                return

            def _reply(self, status: int, body: dict[str, Any]) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                if self.path == "/v1/messages":
                    self._reply(HTTPStatus.OK, {"messages": gateway.messages()})
                else:
                    self._reply(HTTPStatus.NOT_FOUND, {"error": "not found"})

            def do_POST(self) -> None:
                if self.path != "/v1/messages":
                    self._reply(HTTPStatus.NOT_FOUND, {"error": "not found"})
                    return
                if self.headers.get("Authorization") != f"Bearer {gateway.token}":
                    self._reply(HTTPStatus.UNAUTHORIZED, {"error": "bad token"})
                    return
                length = int(self.headers.get("Content-Length") or 0)
                try:
                    body = json.loads(self.rfile.read(length))
                    message = {
                        "to": str(body["to"]),
                        "sender": str(body["sender"]),
                        "text": str(body["text"]),
                    }
                except (ValueError, KeyError, TypeError):
                    self._reply(
                        HTTPStatus.BAD_REQUEST, {"error": "expected JSON {to, sender, text}"}
                    )
                    return
                refusal = gateway.outage.take()
                if refusal:
                    self._reply(refusal, {"error": "refused by the test gateway"})
                    return
                record: dict[str, Any] = {
                    **message,
                    "id": uuid.uuid4().hex,
                    "received_at": time.time(),
                }
                gateway.record(record)
                self._reply(HTTPStatus.CREATED, {"id": record["id"]})

        self.port = processes.free_port()
        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def record(self, message: dict[str, Any]) -> None:
        with self.lock, open(self.log_path, "a", encoding="utf-8") as log:
            log.write(json.dumps(message, ensure_ascii=False) + "\n")

    def messages(self) -> list[dict[str, Any]]:
        return read_sms_log(self.log_path)

    def stop(self) -> None:
        if self._server:
            self._server.shutdown()
            self._server.server_close()
            self._server = None


def read_sms_log(log_path: Path) -> list[dict[str, Any]]:
    if not log_path.exists():
        return []
    with open(log_path, encoding="utf-8") as log:
        return [json.loads(line) for line in log if line.strip()]
