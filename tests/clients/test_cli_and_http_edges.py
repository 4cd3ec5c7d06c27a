"""The edges a developer or an operator meets: a reused connection answered at once, JSON
for every 404 and 405, a busy port and `bff watch`'s failures said in one line."""

from __future__ import annotations

import asyncio
import http.client
import json
import os
import statistics
import sys
import time
from typing import Any

import httpx

from bff.web.serving import start_server
from tests.conftest import Bff, redis_url_for_tests
from tests.redis_process import free_port
from tests.resolvers.test_cancellation import bergen_visit, cancel


async def test_requests_on_a_kept_alive_connection_are_answered_at_once(bff: Bff) -> None:
    """Nagle's algorithm meeting the client's delayed ACK used to hold every response after
    the first on one connection for ~40 ms."""
    host, port = bff.url.removeprefix("http://").split(":")

    def twenty() -> list[float]:
        connection = http.client.HTTPConnection(host, int(port))
        took = []
        for _ in range(20):
            started = time.perf_counter()
            connection.request("GET", "/healthz")
            connection.getresponse().read()
            took.append((time.perf_counter() - started) * 1000)
        connection.close()
        return took

    after_first = sorted((await asyncio.to_thread(twenty))[1:])
    assert statistics.median(after_first) < 5, after_first
    assert after_first[int(len(after_first) * 0.9)] < 20, after_first


async def test_pipelined_requests_and_a_closing_one_each_get_their_whole_answer(bff: Bff) -> None:
    """A response leaves in one write at the end of its loop turn (`CoalescedWrites`):
    answers to requests sent back to back on one connection come whole and in order, and
    the one that asks to close the connection is sent before it closes."""
    host, port = bff.url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    paths = ["/healthz", "/nowhere", "/healthz", "/nowhere"]
    writer.write(b"".join(f"GET {path} HTTP/1.1\r\nHost: bff\r\n{'Connection: close' if n == 3 else 'X: y'}"
                          f"\r\n\r\n".encode() for n, path in enumerate(paths)))
    await writer.drain()
    received = await asyncio.wait_for(reader.read(), timeout=5)  # to the end: the server closed
    writer.close()
    statuses, rest = [], received
    while rest:
        head, _, rest = rest.partition(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        length = int(next(line.split(b":")[1] for line in lines if line.lower().startswith(b"content-length")))
        body, rest = rest[:length], rest[length:]
        assert len(body) == length
        statuses.append((int(lines[0].split()[1]), body))
    assert [status for status, _ in statuses] == [200, 404, 200, 404]
    assert statuses[0][1] == b"ok"
    assert json.loads(statuses[3][1])["errors"][0]["extensions"]["code"] == "NOT_FOUND"


async def test_every_404_and_405_is_json(bff: Bff) -> None:
    for method, path, status, code in (("GET", "/nowhere", 404, "NOT_FOUND"),
                                       ("PUT", "/graphql", 405, "METHOD_NOT_ALLOWED"),
                                       ("GET", "/webhooks/bergen-kommune", 405, "METHOD_NOT_ALLOWED"),
                                       ("DELETE", "/calendar.ics", 405, "METHOD_NOT_ALLOWED")):
        response = await bff.http.request(method, f"{bff.url}{path}")
        assert response.status_code == status, (method, path)
        assert response.headers["content-type"].startswith("application/json")
        assert response.json()["errors"][0]["extensions"]["code"] == code
        assert response.json()["errors"][0]["message"]


async def run_cli(*args: str, env: dict[str, str] | None = None, timeout: float = 30) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bff", *args, env={**os.environ, **(env or {})},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(process.communicate(), timeout)
    return process.returncode or 0, out.decode(), err.decode()


async def test_bff_serve_on_a_busy_port_says_so_in_one_line(bff: Bff) -> None:
    port = int(bff.url.rsplit(":", 1)[1])
    code, _, err = await run_cli("serve", env={"BFF_PORT": str(port), "REDIS_URL": redis_url_for_tests(),
                                               "BFF_DEV_KEY_FILE": str(bff.key_file)})
    assert code != 0
    lines = [line for line in err.splitlines() if line.strip() and '"event"' not in line]
    assert len(lines) == 1, err
    assert "already in use" in lines[0] and "--port" in lines[0] and "BFF_PORT" in lines[0]
    assert "Traceback" not in err


async def test_bff_watch_says_what_went_wrong_in_one_line(bff: Bff) -> None:
    nobody = f"http://127.0.0.1:{free_port()}"
    code, _, err = await run_cli("watch", "--url", nobody, env={"BFF_DEV_KEY_FILE": str(bff.key_file)})
    assert code != 0 and "Traceback" not in err
    assert "nothing is listening" in err and nobody in err
    code, _, err = await run_cli("watch", "--url", bff.url, "--token", "not-a-token")
    assert code != 0 and "Traceback" not in err
    assert "refused the token" in err


async def test_bff_watch_defaults_to_bff_host_and_port(bff: Bff) -> None:
    port = free_port()
    code, _, err = await run_cli("watch", env={"BFF_PORT": str(port), "BFF_DEV_KEY_FILE": str(bff.key_file)})
    assert code != 0 and f"127.0.0.1:{port}" in err


async def test_bff_watch_reconnects_after_a_restart_and_resumes(bff: Bff, make_bff: Any) -> None:
    """A server restart closes subscriptions with 1012; `bff watch` reconnects to the same
    address and carries on after the last outcome it printed: nothing twice, nothing lost."""
    first = await make_bff()
    port = int(first.url.rsplit(":", 1)[1])
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bff", "watch", "--url", first.url, "--person", "asane",
        env={**os.environ, "BFF_DEV_KEY_FILE": str(bff.key_file)},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    assert process.stdout is not None and process.stderr is not None
    stdout, stderr = process.stdout, process.stderr

    async def said(text: bytes) -> list[bytes]:
        lines = [await asyncio.wait_for(stderr.readline(), 20)]
        while text not in lines[-1]:
            lines.append(await asyncio.wait_for(stderr.readline(), 20))
        return lines

    async def outcome() -> dict[str, Any]:
        event = json.loads(await asyncio.wait_for(stdout.readline(), 20))
        return dict(event["data"]["cancellationUpdates"])

    try:
        await said(b"watching")
        await cancel(bff, (await bergen_visit(bff, index=1))["id"])
        before = await outcome()
        assert first.server is not None
        await first.server.stop()
        again = await start_server(first.app, "127.0.0.1", port)
        try:
            lines = await said(b"watching")
            assert any(f"resuming after {before['cursor']}".encode() in line for line in lines), lines
            await cancel(bff, (await bergen_visit(bff, index=0))["id"])
            after = await outcome()
            assert after["request"]["id"] != before["request"]["id"]
        finally:
            await again.stop()
    finally:
        process.kill()
        await process.wait()


async def test_bff_serve_logs_json_on_stdout_and_greets_people_on_stderr(bff: Bff) -> None:
    port = free_port()
    env = {**os.environ, "BFF_PORT": str(port), "REDIS_URL": redis_url_for_tests(),
           "BFF_DEV_KEY_FILE": str(bff.key_file)}
    process = await asyncio.create_subprocess_exec(sys.executable, "-m", "bff", "serve", env=env,
                                                   stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    assert process.stderr is not None
    banner = await asyncio.wait_for(process.stderr.readline(), 30)
    assert b"Timeavtaler BFF (sandbox) at" in banner
    async with httpx.AsyncClient() as http:
        assert (await http.get(f"http://127.0.0.1:{port}/healthz")).text == "ok"
    process.terminate()
    out, _ = await process.communicate()
    lines = [line for line in out.decode().splitlines() if line.strip()]
    assert lines and all(line.startswith("{") for line in lines), lines
    events = [json.loads(line)["event"] for line in lines]
    assert "bff.started" in events and any("Started server process" in e for e in events)
