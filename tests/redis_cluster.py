"""A real Redis Cluster the tests own: six redis-server processes on loopback (three
primaries, three replicas, AOF on), joined by `redis-cli --cluster create`.

`BFF_TEST_REDIS=cluster` runs the suite's Redis-touching tests against one (README's
test command does a second pass so); the failover test starts one of its own."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time

from tests.redis_process import RedisProcess

BUS_OFFSET = 10_000
"""A cluster node also listens on its port + 10000 (the cluster bus)."""


def _free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_node_port() -> int:
    """A free port whose cluster-bus port (+10000) is free and a valid port too."""
    while True:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = int(sock.getsockname()[1])
        if port + BUS_OFFSET <= 65535 and _free(port + BUS_OFFSET):
            return port

NODE_TIMEOUT_MS = 1000
"""How long a primary may be silent before its replica takes over: short, so the
failover test's switch takes a few seconds, as a tuned production cluster's would."""


class RedisCluster6:
    """Six nodes; `url` names the first (a client finds the rest)."""

    def __init__(self) -> None:
        self.nodes = [RedisProcess(free_node_port(), appendonly=True, extra=(
            "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
            "--cluster-node-timeout", str(NODE_TIMEOUT_MS))) for _ in range(6)]

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.nodes[0].port}/0"

    def start(self) -> RedisCluster6:
        try:
            self._create()
        except BaseException:
            self.stop()
            raise
        return self

    def _create(self) -> None:
        for node in self.nodes:
            node.start()
        cli = shutil.which("redis-cli")
        if cli is None:
            raise RuntimeError("redis-cli is needed to create the test cluster")
        subprocess.run([cli, "--cluster", "create", *[f"127.0.0.1:{n.port}" for n in self.nodes],
                        "--cluster-replicas", "1", "--cluster-yes"],
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=60)
        self.wait_ok()

    def info(self, node: RedisProcess) -> str:
        done = subprocess.run(["redis-cli", "-p", str(node.port), "cluster", "info"], capture_output=True,
                              text=True, timeout=5)
        return done.stdout

    def role(self, node: RedisProcess) -> str:
        done = subprocess.run(["redis-cli", "-p", str(node.port), "role"], capture_output=True, text=True, timeout=5)
        return done.stdout.split("\n", 1)[0].strip()

    def primaries(self) -> list[RedisProcess]:
        return [n for n in self.nodes if n.proc is not None and self.role(n) == "master"]

    def wait_ok(self, timeout: float = 30.0) -> None:
        """Until three running nodes are primaries (after a primary died: its replica was
        promoted) and every running node says the cluster is ok (all slots served)."""
        deadline = time.monotonic() + timeout
        while True:
            running = [n for n in self.nodes if n.proc is not None]
            if len(self.primaries()) == 3 and all("cluster_state:ok" in self.info(n) for n in running):
                return
            if time.monotonic() > deadline:
                raise RuntimeError("the test Redis Cluster did not become ok")
            time.sleep(0.1)

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()
            shutil.rmtree(node.dir, ignore_errors=True)
