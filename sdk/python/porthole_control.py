"""Porthole's control API for Python: TunnelStart / TunnelStop / TunnelStopAll.

The Porthole tray app (or ``porthole agent`` where no tray runs) opens
tunnels for other programs. This module talks to it over its private
endpoint (a Unix socket on Linux and macOS, a named pipe on Windows) and
needs nothing but the standard library::

    import porthole_control as porthole
    port = porthole.tunnel_start("mysql")      # 13306: connect to 127.0.0.1:port
    ...
    porthole.tunnel_stop("mysql")

Tunnels started with ``tunnel_start`` belong to this process: they close
when it exits, however it ends, unless they were already open. Errors
raise ``PortholeError`` with Porthole's message.
"""

import os
import socket
import sys
import threading

__all__ = ["PortholeError", "Porthole", "tunnel_start", "tunnel_stop", "tunnel_stop_all", "endpoint"]


class PortholeError(Exception):
    """A refusal or failure, with a message for the user."""


def endpoint():
    """The control endpoint's path: $PORTHOLE_CONTROL, else the default."""
    env = os.environ.get("PORTHOLE_CONTROL")
    if env:
        return env
    if sys.platform == "win32":
        user = os.environ.get("USERNAME", "")
        return "\\\\.\\pipe\\porthole-control-" + user
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    if runtime:
        return os.path.join(runtime, "porthole", "control.sock")
    import tempfile
    return os.path.join(tempfile.gettempdir(), "porthole-%d" % os.getuid(), "control.sock")


class Porthole:
    """One connection to Porthole. Tunnels it starts with hold=True close
    when the connection does (when the process exits)."""

    def __init__(self, path=None):
        path = path or endpoint()
        try:
            if sys.platform == "win32":
                self._f = open(path, "r+b", buffering=0)
            else:
                s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                s.connect(path)
                self._f = s.makefile("rwb", buffering=0)
                self._sock = s
        except OSError as e:
            raise PortholeError("Porthole is not running (start the tray app or porthole agent): %s" % e) from None
        self._lock = threading.Lock()
        self._buf = b""
        hello = self._ask("HELLO")
        if not hello.startswith("porthole-control "):
            raise PortholeError("%s is not Porthole's control endpoint" % path)

    def _line(self):
        while b"\n" not in self._buf:
            chunk = self._f.read(4096) if sys.platform == "win32" else self._sock.recv(4096)
            if not chunk:
                raise PortholeError("Porthole closed the connection")
            self._buf += chunk
        line, self._buf = self._buf.split(b"\n", 1)
        return line.decode("utf-8")

    def _ask(self, request, extra_lines=False):
        with self._lock:
            self._f.write((request + "\n").encode("utf-8"))
            answer = self._line()
            if answer.startswith("ERR "):
                raise PortholeError(answer[4:])
            if not answer.startswith("OK"):
                raise PortholeError("unexpected answer %r" % answer)
            rest = answer[3:]
            if extra_lines:
                return rest, [self._line() for _ in range(int(rest))]
            return rest

    def start(self, context, port=0, hold=True):
        """Open the tunnel (on port, or its usual one) and return its local port."""
        _check_name(context)
        req = "START %s %d" % (context, int(port))
        if hold:
            req += " HOLD"
        return int(self._ask(req))

    def stop(self, context):
        """Close the tunnel and its connections."""
        _check_name(context)
        self._ask("STOP %s" % context)

    def stop_all(self):
        """Close every open tunnel; return how many were open."""
        return int(self._ask("STOPALL"))

    def list(self):
        """[(context, state, port)] of the tunnels this user may use."""
        _, lines = self._ask("LIST", extra_lines=True)
        out = []
        for line in lines:
            name, state, port = line.split(" ")
            out.append((name, state, int(port)))
        return out

    def close(self):
        self._f.close()


def _check_name(context):
    if not context or any(c.isspace() for c in context):
        raise PortholeError("tunnel name %r: one word, like mysql" % (context,))


_shared = None
_shared_lock = threading.Lock()


def _conn():
    global _shared
    with _shared_lock:
        if _shared is None:
            _shared = Porthole()
        return _shared


def tunnel_start(context, port=0):
    """TunnelStart: open the tunnel for this process and return its local port."""
    return _conn().start(context, port)


def tunnel_stop(context):
    """TunnelStop: close the tunnel."""
    _conn().stop(context)


def tunnel_stop_all():
    """TunnelStopAll: close every open tunnel."""
    return _conn().stop_all()
