"""Hosts and ports: a server needs a token off loopback, a container reaches a loopback InfluxDB only on the host
network, and a port is checked before a server is started on it."""

from __future__ import annotations

import errno
import ipaddress
import socket

from .errors import DeploymentError


def is_loopback(host: str) -> bool:
    """``localhost`` or a loopback address (127.0.0.0/8, ::1); a name that needs DNS is not."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_host(host: str) -> str:
    """Refuse a host a server could not listen on: an address or a plain host name, never option-like text."""
    if not isinstance(host, str) or not host or host.startswith("-") or len(host) > 253:
        raise DeploymentError(f"host {host!r} is not an address to listen on: use 127.0.0.1 (or ::1, 0.0.0.0)")
    if not all(ch.isalnum() or ch in ".-:_" for ch in host):
        raise DeploymentError(f"host {host!r} is not an address to listen on: use 127.0.0.1 (or ::1, 0.0.0.0)")
    return host


def socket_family(host: str) -> socket.AddressFamily:
    """IPv6 for an address with a colon, else IPv4: how every mm_magics socket picks its family."""
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def free_port(host: str = "127.0.0.1") -> int:
    """A port free on ``host`` now (the OS picks it); whoever binds it next may still race another process."""
    with socket.socket(socket_family(host), socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def check_port(port: int | None, host: str = "127.0.0.1") -> None:
    """Refuse a port a server could not listen on, before a process or container is started for it.

    Without this a bad ``--port`` surfaced as a server that died at start with a traceback in its log.
    ``None`` (pick a free port) always passes.
    """
    if port is None:
        return
    if not isinstance(port, int) or isinstance(port, bool) or not 1 <= port <= 65535:
        raise DeploymentError(
            f"port {port!r} is not a TCP port: pick one in 1-65535, or leave --port out for a free one"
        )
    with socket.socket(socket_family(host), socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the server binds: TIME_WAIT is no obstacle
        try:
            sock.bind((host, port))
        except PermissionError:
            raise DeploymentError(
                f"port {port} on {host} needs privileges: pick one above 1023, or leave --port out for a free one"
            ) from None
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise DeploymentError(
                    f"port {port} on {host} is in use: pick another --port, or leave it out for a free one"
                ) from None
            raise DeploymentError(
                f"cannot listen on {host}:{port} ({exc.strerror}): pick another host or port"
            ) from None
