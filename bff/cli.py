"""`bff serve`, `bff token`, `bff watch`, `bff export-schema`, `bff manifest`, `bff sandbox`."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from bff.settings import DEMO_PERSON, DEV_ISSUER, Profile, Settings
from bff.web.auth import load_dev_key, mint_dev_token


def _token(settings: Settings, pid: str, acr: str) -> str:
    if not settings.uses_dev_issuer:
        raise SystemExit("bff token only works with the sandbox's development issuer (BFF_PROFILE=sandbox, "
                         "no BFF_OIDC_JWKS_URL/FILE)")
    return mint_dev_token(load_dev_key(settings.dev_key_file), pid, issuer=DEV_ISSUER,
                          audience=settings.oidc_audience, acr=acr)


async def _serve(settings: Settings) -> None:
    from bff.app import create_app
    from bff.runtime.tracing import configure_tracing
    from bff.web.logs import configure_logging
    from bff.web.serving import PortInUse, start_server

    configure_logging(settings.log_level)
    configure_tracing()
    variables: dict[str, str] = {}
    sandbox = None
    embedded = settings.profile is Profile.SANDBOX and settings.sources is None and settings.sandbox_url is None
    if embedded:
        from bff.sandbox.app import create_sandbox

        providers = create_sandbox(clients=_sandbox_clients(settings))
        sandbox = await start_server(providers.app, settings.host, 0)
        variables["SANDBOX_URL"] = sandbox.url
    elif settings.sandbox_url:
        variables["SANDBOX_URL"] = settings.sandbox_url
    app = create_app(settings, variables, own_process=True)
    try:
        bff = await start_server(app, settings.host, settings.port, log_level="info")
    except PortInUse as exc:
        if sandbox:
            await sandbox.stop()
        raise SystemExit(f"bff serve: {exc.host}:{exc.port} is already in use (another bff serve?); "
                         "choose another port with --port or BFF_PORT") from None
    if embedded:
        _wire_webhooks(providers.state, app.state.services.catalogue, bff.url)
    _banner(settings, bff.url, sandbox.url if sandbox else None)
    try:
        await bff.task
    finally:
        if sandbox:
            await sandbox.stop()


def _wire_webhooks(state: Any, catalogue: Any, url: str) -> None:
    """Point the embedded sandbox municipalities' answers at this BFF's webhook."""
    for source in catalogue.sources:
        if source.protocol == "municipal" and source.webhook_secret:
            tenant = source.base_url.rstrip("/").rsplit("/", 1)[-1]
            state.desk.policy(tenant).update({"webhook_url": f"{url}/webhooks/{source.id}",
                                              "webhook_secret": source.webhook_secret})


def _banner(settings: Settings, url: str, sandbox_url: str | None) -> None:
    lines = [f"Timeavtaler BFF ({settings.profile.value}) at {url}/graphql"]
    if settings.serves_web_client:
        lines.append(f"The citizen's page: open {url}/ in a browser")
    if settings.profile is Profile.SANDBOX:
        lines.append(f"GraphiQL: open {url}/graphql in a browser")
    if sandbox_url:
        lines.append(f"Sandbox providers at {sandbox_url}")
    if settings.uses_dev_issuer:
        from bff.domain.timez import today
        from bff.sandbox.cast import cast

        person = cast(today())[DEMO_PERSON]
        token = _token(settings, person.pid, "idporten-loa-high")
        lines += [f"Development token for {person.name} (sandbox person '{DEMO_PERSON}'), as a GraphiQL header:",
                  f'  {{"Authorization": "Bearer {token}"}}',
                  "More tokens: bff token --person <handle> (handles: bff token --list)"]
    print("\n".join(lines), file=sys.stderr, flush=True)  # stdout is for the JSON log lines


def _person_pid(handle: str) -> str:
    from bff.domain.timez import today
    from bff.sandbox.cast import cast

    people = cast(today())
    if handle not in people:
        raise SystemExit(f"unknown sandbox person {handle!r}; see bff token --list")
    return people[handle].pid


def _cmd_token(args: argparse.Namespace) -> None:
    settings = Settings()
    from bff.domain.timez import today
    from bff.sandbox.cast import cast

    people = cast(today())
    if args.list:
        for handle, member in people.items():
            print(f"{handle:14} {member.name}")
        return
    if args.person:
        pid = _person_pid(args.person)
    elif args.pid:
        pid = args.pid
    else:
        raise SystemExit("give --pid P or --person HANDLE")
    if len(pid) != 11 or not pid.isdigit():
        raise SystemExit("--pid must be an 11-digit national identity number")
    print(_token(settings, pid, args.acr))


def _cmd_manifest(args: argparse.Namespace) -> None:
    from bff.web.trusted import build_manifest, default_manifest_path, operations_dir, render_manifest

    target = Path(args.output) if args.output else default_manifest_path()
    documents = build_manifest(Path(args.operations) if args.operations else operations_dir())
    target.write_text(render_manifest(documents), "utf-8")
    print(f"wrote {len(documents)} trusted documents to {target}")


def _cmd_export(args: argparse.Namespace) -> None:
    from resolvers.schema import build_schema

    sdl = build_schema().as_str() + "\n"
    if args.output == "-":
        sys.stdout.write(sdl)
    else:
        Path(args.output).write_text(sdl, "utf-8")
        print(f"wrote {args.output}")


WS_REFUSED = 4403
"""The close code of a connection whose token the server refused."""
WATCH_QUERY = """subscription Watch($after: String) { cancellationUpdates(after: $after) {
  cursor request { id status providerMessage decidedAt appointment { title start status cancelledBy } } } }"""


RESTARTING = frozenset({1001, 1012})
"""Close codes of a server going away or restarting: reconnect and resume."""
RECONNECT_WAIT = (0.5, 1.0, 2.0, 5.0)


async def _watch(url: str, token: str, after: str | None) -> None:
    """Print cancellation outcomes as they arrive (graphql-transport-ws), one JSON line each;
    reconnect after a server restart and resume after the last outcome printed."""
    from websockets.exceptions import ConnectionClosed

    attempt = 0
    while True:
        try:
            async for cursor in _watch_once(url, token, after):
                after, attempt = cursor, 0
            return
        except ConnectionClosed as exc:
            code = exc.rcvd.code if exc.rcvd else None
            if code == WS_REFUSED:
                raise SystemExit("bff watch: the server refused the token (expired, or not for this server)") from None
            if code not in RESTARTING:
                raise SystemExit(f"bff watch: the connection closed ({code or 'no close code'})") from None
        except OSError:
            if attempt == 0 and after is None:
                raise SystemExit(f"bff watch: nothing is listening at {url} (start it with bff serve, or pass "
                                 "--url / BFF_HOST / BFF_PORT)") from None
        wait = RECONNECT_WAIT[min(attempt, len(RECONNECT_WAIT) - 1)]
        attempt += 1
        print(f"bff watch: reconnecting in {wait:g} s, resuming after {after or 'now'}", file=sys.stderr, flush=True)
        await asyncio.sleep(wait)


async def _watch_once(url: str, token: str, after: str | None) -> AsyncIterator[str]:
    import json

    from websockets.asyncio.client import connect
    from websockets.typing import Subprotocol

    async with connect(url.replace("http", "ws", 1) + "/graphql",
                       subprotocols=[Subprotocol("graphql-transport-ws")]) as ws:
        await ws.send(json.dumps({"type": "connection_init", "payload": {"Authorization": f"Bearer {token}"}}))
        ack = json.loads(await ws.recv())
        if ack.get("type") != "connection_ack":
            raise SystemExit(f"bff watch: the server did not accept the connection: {ack}")
        await ws.send(json.dumps({"id": "1", "type": "subscribe",
                                  "payload": {"query": WATCH_QUERY, "variables": {"after": after}}}))
        print("watching cancellation outcomes (Ctrl-C to stop)", file=sys.stderr, flush=True)
        async for raw in ws:
            message = json.loads(raw)
            if message.get("type") == "next":
                print(json.dumps(message["payload"], ensure_ascii=False), flush=True)
                yield message["payload"]["data"]["cancellationUpdates"]["cursor"]
            elif message.get("type") in ("error", "complete"):
                raise SystemExit(f"bff watch: the subscription ended: {message.get('payload')}")


def _sandbox_clients(settings: Settings | None) -> dict[str, dict[str, Any]]:
    """The HelseID client the sandbox's token server knows: the BFF's sandbox client, with
    the key in HELSEID_KEY, or else the development client key (created on first use)."""
    import json

    from bff.sandbox.helseid import SANDBOX_CLIENT_ID
    from bff.web.auth import load_dev_client_key

    if os.environ.get("HELSEID_KEY"):
        try:
            return {SANDBOX_CLIENT_ID: json.loads(os.environ["HELSEID_KEY"])}
        except ValueError:
            raise SystemExit("HELSEID_KEY is not a JSON Web Key") from None
    path = settings.dev_client_key_file if settings else Settings.model_fields["dev_client_key_file"].get_default(
        call_default_factory=True)
    return {SANDBOX_CLIENT_ID: load_dev_client_key(path)}


async def _sandbox_only(host: str, port: int) -> None:
    from bff.sandbox.app import create_sandbox
    from bff.web.serving import start_server

    try:
        settings: Settings | None = Settings()
    except ValueError:
        settings = None
    running = await start_server(create_sandbox(clients=_sandbox_clients(settings)).app, host, port,
                                 log_level="info")
    print(f"Sandbox providers at {running.url}", flush=True)
    await running.task


def _listening() -> tuple[str, int]:
    """BFF_HOST and BFF_PORT as `bff serve` reads them (their defaults when unset), also
    when the rest of the environment would not make a valid configuration."""
    try:
        settings = Settings()
    except ValueError:
        return os.environ.get("BFF_HOST", Settings.model_fields["host"].default), \
            int(os.environ.get("BFF_PORT", Settings.model_fields["port"].default))
    return settings.host, settings.port


async def _migrate_keys(settings: Settings) -> None:
    from bff.store.connection import open_redis
    from bff.store.migrate import move_audit_streams

    if not settings.redis_url or settings.redis_cluster:
        raise SystemExit("bff migrate-keys: set REDIS_URL to the single Redis the earlier version used")
    async with open_redis(settings.redis_url) as (redis, _):
        done = await move_audit_streams(redis, settings.redis_prefix)
    print(f"audit streams moved to the cluster-ready layout: {done.moved}; left (new key exists): {done.kept}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="bff", description="Timeavtaler BFF")
    sub = parser.add_subparsers(dest="command", required=True)
    host, port = _listening()
    where = f"http://{host}:{port}"
    serve = sub.add_parser("serve", help="run the BFF (embedded sandbox by default)",
                           formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    serve.add_argument("--host", default=host, help="address to listen on (or BFF_HOST)")
    serve.add_argument("--port", type=int, default=port, help="port to listen on (or BFF_PORT)")
    token = sub.add_parser("token", help="print a development token (sandbox only)",
                           formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    token.add_argument("--pid", help="any 11-digit national identity number")
    token.add_argument("--person", help="a sandbox person's handle, e.g. asane (see --list)")
    token.add_argument("--acr", default="idporten-loa-high", help="the login's level of assurance")
    token.add_argument("--list", action="store_true", help="list the sandbox people")
    export = sub.add_parser("export-schema", help="write the GraphQL SDL",
                            formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    export.add_argument("--output", default="schema.graphql", help="file to write")
    manifest = sub.add_parser("manifest", help="write the trusted-documents manifest from the .graphql files")
    manifest.add_argument("--operations", help="folder of .graphql files (default: bff/trusted/operations)")
    manifest.add_argument("--output", help="manifest path (default: bff/trusted/manifest.json)")
    watch = sub.add_parser("watch", help="print cancellation outcomes live (sandbox person or token)",
                           formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    watch.add_argument("--url", default=where, help="the BFF (default from BFF_HOST and BFF_PORT)")
    watch.add_argument("--person", default=DEMO_PERSON, help="a sandbox person's handle")
    watch.add_argument("--token", help="a bearer token (instead of --person)")
    watch.add_argument("--after", help='"0" to replay history, or a cursor to resume after')
    sub.add_parser("migrate-keys", help="move keys of the earlier layout to the cluster-ready one (REDIS_URL)")
    sandbox = sub.add_parser("sandbox", help="run only the sandbox providers",
                             formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    sandbox.add_argument("--host", default="127.0.0.1", help="address to listen on")
    sandbox.add_argument("--port", type=int, default=8900, help="port to listen on")
    args = parser.parse_args(argv)
    if args.command == "serve":
        settings = Settings(host=args.host, port=args.port)
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(_serve(settings))
    elif args.command == "token":
        _cmd_token(args)
    elif args.command == "export-schema":
        _cmd_export(args)
    elif args.command == "manifest":
        _cmd_manifest(args)
    elif args.command == "migrate-keys":
        asyncio.run(_migrate_keys(Settings()))
    elif args.command == "watch":
        bearer = args.token or _token(Settings(), _person_pid(args.person), "idporten-loa-high")
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(_watch(args.url, bearer, args.after))
    else:
        asyncio.run(_sandbox_only(args.host, args.port))
