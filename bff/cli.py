"""`bff serve`, `bff token`, `bff export-schema`, `bff sandbox`."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
from pathlib import Path

from bff.auth import load_dev_key, mint_dev_token
from bff.settings import DEV_ISSUER, Profile, Settings

DEMO_PERSON = "asane"


def _token(settings: Settings, pid: str, acr: str) -> str:
    if not settings.uses_dev_issuer:
        raise SystemExit("bff token only works with the sandbox's development issuer (BFF_PROFILE=sandbox, "
                         "no BFF_OIDC_JWKS_URL/FILE)")
    return mint_dev_token(load_dev_key(settings.dev_key_file), pid, issuer=DEV_ISSUER,
                          audience=settings.oidc_audience, acr=acr)


async def _serve(settings: Settings) -> None:
    from bff.app import create_app
    from bff.logs import configure_logging
    from bff.serving import start_server

    configure_logging(settings.log_level)
    variables: dict[str, str] = {}
    sandbox = None
    if settings.profile is Profile.SANDBOX and settings.sources is None and settings.sandbox_url is None:
        from bff.sandbox.app import create_sandbox

        sandbox = await start_server(create_sandbox().app, settings.host, 0)
        variables["SANDBOX_URL"] = sandbox.url
    elif settings.sandbox_url:
        variables["SANDBOX_URL"] = settings.sandbox_url
    bff = await start_server(create_app(settings, variables), settings.host, settings.port, log_level="info")
    _banner(settings, bff.url, sandbox.url if sandbox else None)
    try:
        await bff.task
    finally:
        if sandbox:
            await sandbox.stop()


def _banner(settings: Settings, url: str, sandbox_url: str | None) -> None:
    lines = [f"Timeavtaler BFF ({settings.profile.value}) at {url}/graphql"]
    if settings.profile is Profile.SANDBOX:
        lines.append(f"GraphiQL: open {url}/graphql in a browser")
    if sandbox_url:
        lines.append(f"Sandbox providers at {sandbox_url}")
    if settings.uses_dev_issuer:
        from bff.sandbox.cast import cast
        from bff.timez import today

        person = cast(today())[DEMO_PERSON]
        token = _token(settings, person.pid, "idporten-loa-high")
        lines += [f"Development token for {person.name} (sandbox person '{DEMO_PERSON}'), as a GraphiQL header:",
                  f'  {{"Authorization": "Bearer {token}"}}',
                  "More tokens: bff token --person <handle> (handles: bff token --list)"]
    print("\n".join(lines), flush=True)


def _cmd_token(args: argparse.Namespace) -> None:
    settings = Settings()
    from bff.sandbox.cast import cast
    from bff.timez import today

    people = cast(today())
    if args.list:
        for handle, member in people.items():
            print(f"{handle:14} {member.name}")
        return
    if args.person:
        if args.person not in people:
            raise SystemExit(f"unknown sandbox person {args.person!r}; see bff token --list")
        pid = people[args.person].pid
    elif args.pid:
        pid = args.pid
    else:
        raise SystemExit("give --pid P or --person HANDLE")
    if len(pid) != 11 or not pid.isdigit():
        raise SystemExit("--pid must be an 11-digit national identity number")
    print(_token(settings, pid, args.acr))


def _cmd_export(args: argparse.Namespace) -> None:
    from resolvers.schema import build_schema

    sdl = build_schema().as_str() + "\n"
    if args.output == "-":
        sys.stdout.write(sdl)
    else:
        Path(args.output).write_text(sdl, "utf-8")
        print(f"wrote {args.output}")


async def _sandbox_only(host: str, port: int) -> None:
    from bff.sandbox.app import create_sandbox
    from bff.serving import start_server

    running = await start_server(create_sandbox().app, host, port, log_level="info")
    print(f"Sandbox providers at {running.url}", flush=True)
    await running.task


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="bff", description="Timeavtaler BFF")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the BFF (embedded sandbox by default)")
    serve.add_argument("--host")
    serve.add_argument("--port", type=int)
    token = sub.add_parser("token", help="print a development token (sandbox only)")
    token.add_argument("--pid")
    token.add_argument("--person", help="a sandbox person's handle, e.g. asane")
    token.add_argument("--acr", default="idporten-loa-high")
    token.add_argument("--list", action="store_true", help="list the sandbox people")
    export = sub.add_parser("export-schema", help="write the GraphQL SDL")
    export.add_argument("--output", default="schema.graphql")
    sandbox = sub.add_parser("sandbox", help="run only the sandbox providers")
    sandbox.add_argument("--host", default="127.0.0.1")
    sandbox.add_argument("--port", type=int, default=8900)
    args = parser.parse_args(argv)
    if args.command == "serve":
        overrides = {k: v for k, v in (("host", args.host), ("port", args.port)) if v is not None}
        settings = Settings(**overrides)
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(_serve(settings))
    elif args.command == "token":
        _cmd_token(args)
    elif args.command == "export-schema":
        _cmd_export(args)
    else:
        asyncio.run(_sandbox_only(args.host, args.port))
