"""The `lrserve` command: `serve`, `preview` and `openapi`. Parses arguments; the work happens elsewhere."""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from pathlib import Path

from lrserve.settings import Settings


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    return args.handler(args)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lrserve", description="Serve learning rates to training jobs.")
    commands = parser.add_subparsers(dest="command")

    serve = commands.add_parser("serve", help="run the HTTP service")
    serve.add_argument("--host", help="interface to bind (env LRSERVE_HOST, default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port (env LRSERVE_PORT, default 8000)")
    serve.add_argument("--database", help="sqlite:///path.db or postgresql://... "
                                          "(env LRSERVE_DATABASE_URL, default sqlite:///./lrserve.db)")
    serve.set_defaults(handler=_serve)

    preview = commands.add_parser("preview", help="print a spec's learning rates without a server")
    preview.add_argument("spec", type=Path, help="a JSON file with a run spec, or just a schedule")
    preview.add_argument("--steps", type=int, default=20, help="how many steps (default 20)")
    preview.add_argument("--every", type=int, default=1, help="print every K-th step (default 1)")
    preview.set_defaults(handler=_preview)

    openapi = commands.add_parser("openapi", help="print the OpenAPI document (regenerates openapi.json)")
    openapi.set_defaults(handler=_openapi)
    return parser


def _serve(args: argparse.Namespace) -> int:
    import uvicorn

    from lrserve.api import create_app

    settings = Settings.from_env()
    settings = replace(
        settings,
        host=args.host or settings.host,
        port=args.port if args.port is not None else settings.port,
        database_url=args.database or settings.database_url,
    )
    try:
        from lrserve.store import open_store

        open_store(settings.database_url).close()
    except Exception as error:
        print(f"lrserve: cannot open the database {settings.database_url!r}: {error}", file=sys.stderr)
        return 2
    uvicorn.run(create_app(settings), host=settings.host, port=settings.port,
                access_log=settings.access_log, log_level="info")
    return 0


def _preview(args: argparse.Namespace) -> int:
    from pydantic import ValidationError

    from lrserve.errors import LrserveError, describe_errors
    from lrserve.history import view_of
    from lrserve.runs import range_steps
    from lrserve.spec import RunSpec
    from lrserve.store import RunRecord, StoredRun

    try:
        document = json.loads(args.spec.read_text())
        if isinstance(document, dict) and "schedule" not in document:
            document = {"schedule": document}
        spec = RunSpec.model_validate(document)
        view = view_of(StoredRun(RunRecord(run_id="preview", spec=spec.canonical(), created_at="")))
        steps = range_steps(0, args.steps, args.every)
        values = view.lrs(steps)
    except OSError as error:
        print(f"lrserve preview: cannot read {args.spec}: {error.strerror}", file=sys.stderr)
        return 2
    except json.JSONDecodeError as error:
        print(f"lrserve preview: {args.spec} is not JSON: {error}", file=sys.stderr)
        return 2
    except ValidationError as error:
        print(f"lrserve preview: invalid spec: {describe_errors(error.errors())}", file=sys.stderr)
        return 2
    except LrserveError as error:
        print(f"lrserve preview: {error}", file=sys.stderr)
        return 2
    for step, value in zip(steps, values):
        print(f"{int(step)}\t{float(value)!r}")
    return 0


def _openapi(args: argparse.Namespace) -> int:
    from lrserve.api import create_app

    print(json.dumps(create_app().openapi(), indent=2, sort_keys=True))
    return 0
