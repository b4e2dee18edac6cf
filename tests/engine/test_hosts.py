import socket

import pytest

from mm_magics.engine.errors import DeploymentError
from mm_magics.engine.hosts import check_port, free_port, is_loopback


def test_loopback_hosts():
    assert is_loopback("127.0.0.1") and is_loopback("127.8.9.10") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("10.0.0.1") and not is_loopback("example.org")


def test_a_port_is_checked_before_a_server_is_started_on_it():
    check_port(None)  # "pick one for me" always passes
    port = free_port()
    check_port(port)
    for bad in (0, -1, 65536, 99999, "8080", True):
        with pytest.raises(DeploymentError, match="is not a TCP port: pick one in 1-65535"):
            check_port(bad)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        used = taken.getsockname()[1]
        with pytest.raises(DeploymentError, match=f"port {used} on 127.0.0.1 is in use: pick another --port"):
            check_port(used)
    with pytest.raises(DeploymentError, match="cannot listen on 192.0.2.1"):
        check_port(free_port(), "192.0.2.1")  # TEST-NET-1: not an address of this machine
