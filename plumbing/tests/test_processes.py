"""Ports for the servers the tests and the demo start."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from plumbing.processes import free_port

pytestmark = pytest.mark.unit


def test_a_free_port_is_never_one_the_kernel_gives_outgoing_connections() -> None:
    """Two test workers: a port from bind(0) went to another process's outgoing connection
    before survey-dispatch could bind it (« address already in use »)."""
    first_ephemeral = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    ports = [free_port() for _ in range(50)]
    assert all(1024 < port < first_ephemeral for port in ports)
    assert len(set(ports)) > 40  # random: two callers rarely meet
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", ports[-1]))  # and it is free
