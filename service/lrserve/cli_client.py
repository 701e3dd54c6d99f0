"""The `lrserve` commands for a running service: `runs` (list), `runs show`, `range`, `plot`, `diff`.

They talk to the service through `lrclient.Client` (base URL from --url / LRSERVE_URL, token from --token /
LRSERVE_TOKEN), so they need only the base install (plus matplotlib for `plot`). Exit codes: 0 done, 1 the
service answered an error (its `detail` on stderr) or could not be reached, 2 a usage error.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from lrserve.cli_args import at_least, pixel_size
from lrserve.plot import Curve, Metric, PlotUnavailable, draw, ensure_matplotlib, format_of

DEFAULT_STEPS = 100  # the range of a run without reports, and of a spec file
RANGE_CHUNK = 100_000  # values per lr/range call: the least every service answers
PLOT_POINTS = 5_000  # at most this many plotted steps: longer ranges are sampled every K-th step


class UsageError(Exception):
    """A command line that cannot be carried out as given: exit code 2."""


def add_client_commands(commands: Any, server_installed: Callable[[str], bool]) -> None:
    """Add the client commands to `lrserve`'s subparsers; `server_installed` checks for `plot SPEC.json`."""
    service = argparse.ArgumentParser(add_help=False)
    # SUPPRESS: given before `runs show`, a subcommand's default would otherwise overwrite them.
    service.add_argument("--url", default=argparse.SUPPRESS,
                         help="the service (env LRSERVE_URL, default http://127.0.0.1:8000)")
    service.add_argument("--token", default=argparse.SUPPRESS,
                         help="a token of the service's LRSERVE_TOKEN or LRSERVE_READ_TOKEN (env LRSERVE_TOKEN)")

    runs = commands.add_parser("runs", parents=[service], help="list the runs of a service (runs show RUN: one run)")
    runs.add_argument("--prefix", help="only runs whose id starts with this")
    runs.add_argument("--limit", type=at_least(1), default=100, help="at most this many runs (default 100)")
    runs.add_argument("--json", action="store_true", help="one JSON document instead of a table")
    runs.set_defaults(handler=_command(_list_runs))
    shows = runs.add_subparsers(dest="runs_command")
    show = shows.add_parser("show", parents=[service], help="a run's spec, tracker, revisions and reports")
    show.add_argument("run", help="the run id")
    show.add_argument("--json", action="store_true", help="one JSON document instead of text")
    show.set_defaults(handler=_command(_show_run))

    ranged = commands.add_parser("range", parents=[service], help="a run's learning rates, step by step")
    ranged.add_argument("run", help="the run id")
    _add_steps(ranged)
    ranged.add_argument("--csv", action="store_true", help="CSV with a step,lr header instead of a table")
    ranged.set_defaults(handler=_command(_range))

    plot = commands.add_parser("plot", parents=[service],
                               help="draw a run's (or a spec file's) lr curve to a PNG, SVG or PDF file")
    plot.add_argument("target", help="a run id, or the path of a JSON spec file (plotted without a server)")
    plot.add_argument("-o", "--output", type=Path,
                      help="the file to write, .png, .svg or .pdf (default TARGET.png in this directory)")
    plot.add_argument("--steps", type=at_least(1),
                      help=f"plot steps 0..N-1 (default: a run's reported steps and the next one, "
                           f"{DEFAULT_STEPS} for a run without reports or a spec file)")
    plot.add_argument("--log", action="store_true", help="a logarithmic lr axis")
    plot.add_argument("--metric", help="also draw this reported metric, on a second axis")
    plot.add_argument("--size", type=pixel_size, default=(1000, 600), metavar="WxH",
                      help="the image size in pixels (default 1000x600)")
    plot.set_defaults(handler=_command(_plot, server_installed))

    diff = commands.add_parser("diff", parents=[service], help="how two runs differ: spec, revisions, lrs")
    diff.add_argument("run_a", help="the first run id")
    diff.add_argument("run_b", help="the second run id")
    _add_steps(diff)
    diff.set_defaults(handler=_command(_diff))


def _add_steps(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--start", type=at_least(0), default=0, help="first step (default 0)")
    parser.add_argument("--stop", type=at_least(1),
                        help="stop before this step (default: the latest reported step + 2, so the next "
                             f"step's decided lr is included; {DEFAULT_STEPS} for a run without reports)")
    parser.add_argument("--every", type=at_least(1), default=1, help="every K-th step (default 1)")


def _command(work: Callable[..., None], *extra: Any) -> Callable[[argparse.Namespace], int]:
    """The handler: `work(client, args, *extra)`, with every failure turned into a one-line message."""
    def handle(args: argparse.Namespace) -> int:
        import lrclient

        name = "runs show" if getattr(args, "runs_command", None) == "show" else args.command
        try:
            client = lrclient.Client(getattr(args, "url", None), getattr(args, "token", None), timeout=60.0,
                                     retries=1)
        except ValueError as error:  # a --url that is not http(s)://
            print(f"lrserve {name}: {error}", file=sys.stderr)
            return 2
        try:
            with client:
                work(client, args, *extra)
        except UsageError as error:
            print(f"lrserve {name}: {error}", file=sys.stderr)
            return 2
        except lrclient.APIError as error:
            print(f"lrserve {name}: {error.status}: {error.detail}", file=sys.stderr)
            return 1
        except lrclient.TransportError as error:
            cause = error.cause if error.cause is not None else error
            print(f"lrserve {name}: cannot reach the service at {client.base_url} ({cause}); start it with "
                  "`lrserve serve`, or point --url (or LRSERVE_URL) at it", file=sys.stderr)
            return 1
        except BrokenPipeError:  # `lrserve range ... | head`
            return 0
        return 0

    return handle


# --- runs ------------------------------------------------------------------------------------


def _list_runs(client: Any, args: argparse.Namespace) -> None:
    rows = []
    for summary in _first(client.iter_runs(page_size=min(args.limit, 1000), prefix=args.prefix), args.limit):
        run = client.get_run(summary.run_id)
        next_step = _next_step(run)
        rows.append({
            "run_id": run.run_id, "type": run.spec["schedule"]["type"], "step_unit": run.step_unit,
            "latest_step": run.latest_step, "next_step": next_step, "lr": client.lr(run.run_id, next_step),
            "reductions": run.state.reductions if run.state is not None else None, "created_at": run.created_at,
        })
    if args.json:
        print(json.dumps({"runs": rows}, indent=2))
        return
    print(_table(["RUN", "TYPE", "UNIT", "LATEST STEP", "LR NOW", "REDUCTIONS", "CREATED"],
                 [[r["run_id"], r["type"], r["step_unit"], _or_dash(r["latest_step"]), f"{r['lr']:.6g}",
                   _or_dash(r["reductions"]), r["created_at"]] for r in rows]))


def _show_run(client: Any, args: argparse.Namespace) -> None:
    run = client.get_run(args.run)
    next_step = _next_step(run)
    lr_now = client.lr(run.run_id, next_step)
    reports = _report_summary(client, run.run_id)
    if args.json:
        document = {key: value for key, value in asdict(run).items() if key not in ("created", "etag")}
        print(json.dumps(_finite({**document, "next_step": next_step, "lr": lr_now, "report_summary": reports}),
                         indent=2))
        return
    print(f"run          {run.run_id}")
    print(f"created      {run.created_at}")
    print(f"step unit    {run.step_unit}")
    print(f"lr now       {lr_now!r} (step {next_step})")
    print("spec         " + json.dumps(run.spec, indent=2).replace("\n", "\n             "))
    if run.state is None:
        print("tracker      none (no plateau)")
    else:
        state = run.state
        print(f"tracker      best {state.best}, wait {state.wait}, cooldown {state.cooldown_counter}, "
              f"reductions {state.reductions}")
    if not run.revisions:
        print("revisions    none")
    for index, revision in enumerate(run.revisions):
        label = "revisions    " if index == 0 else "             "
        reason = f" ({revision.reason})" if revision.reason else ""
        print(f"{label}from step {revision.from_step}: {json.dumps(revision.schedule)}{reason}, "
              f"{revision.created_at}")
    if reports["count"] == 0:
        print("reports      none")
        return
    print(f"reports      {reports['count']}, steps {reports['first_step']}..{reports['latest_step']}")
    reduced = reports["reduced_at"]
    print(f"reduced at   {', '.join(map(str, reduced)) if reduced else 'no step'}"
          + (" (the lr drops from the next step on)" if reduced else ""))
    latest = ", ".join(f"{name}={value}" for name, value in reports["latest_metrics"].items())
    print(f"latest       step {reports['latest_step']}: {latest}")


def _report_summary(client: Any, run_id: str) -> dict[str, Any]:
    count, first, latest, reduced, metrics = 0, None, None, [], {}
    for entry in client.iter_reports(run_id):
        count += 1
        first = entry.step if first is None else first
        latest, metrics = entry.step, dict(entry.metrics)
        if entry.reduced:
            reduced.append(entry.step)
    return {"count": count, "first_step": first, "latest_step": latest, "reduced_at": reduced,
            "latest_metrics": metrics}


# --- range -----------------------------------------------------------------------------------


def _range(client: Any, args: argparse.Namespace) -> None:
    stop = args.stop if args.stop is not None else default_stop(client.get_run(args.run))
    steps, lrs = fetch_lrs(client, args.run, args.start, stop, args.every)
    if args.csv:
        writer = csv.writer(sys.stdout, lineterminator="\n")
        writer.writerow(["step", "lr"])
        writer.writerows((step, repr(lr)) for step, lr in zip(steps, lrs))
        return
    print(_table(["STEP", "LR"], [[str(step), repr(lr)] for step, lr in zip(steps, lrs)]))


def default_stop(run: Any) -> int:
    """Every reported step and the next one, whose lr the latest report decided; DEFAULT_STEPS before any."""
    return run.latest_step + 2 if run.latest_step is not None else DEFAULT_STEPS


def fetch_lrs(client: Any, run_id: str, start: int, stop: int, every: int) -> tuple[list[int], list[float]]:
    """The steps start, start+every, ... < stop and their lrs, RANGE_CHUNK values per request."""
    if stop <= start:
        raise UsageError(f"--stop ({stop}) must be greater than --start ({start})")
    steps: list[int] = []
    lrs: list[float] = []
    for chunk_start in range(start, stop, RANGE_CHUNK * every):
        answer = client.lr_range(run_id, chunk_start, min(stop, chunk_start + RANGE_CHUNK * every), every)
        steps.extend(answer.steps)
        lrs.extend(answer.lr)
    return steps, lrs


# --- plot ------------------------------------------------------------------------------------


def _plot(client: Any, args: argparse.Namespace, server_installed: Callable[[str], bool]) -> None:
    output = args.output if args.output is not None else Path(f"{Path(args.target).stem or 'lr'}.png")
    if format_of(output) is None:
        raise UsageError(f"cannot tell the format of {output}: name a .png, .svg or .pdf file")
    try:
        ensure_matplotlib()
    except PlotUnavailable as error:
        raise UsageError(str(error)) from None
    spec_file = Path(args.target)
    if spec_file.is_file():
        curve = _spec_curve(spec_file, args, server_installed)
    else:
        curve = _run_curve(client, args)
    draw(curve, output, size=args.size, log=args.log)
    print(f"wrote {output} ({args.size[0]}x{args.size[1]})")


def _spec_curve(path: Path, args: argparse.Namespace, server_installed: Callable[[str], bool]) -> Curve:
    if not server_installed("plot"):
        raise UsageError("plotting a spec file computes its lrs here, which needs the server's packages")
    if args.metric:
        raise UsageError("--metric needs a run: a spec file has no reports")
    from lrserve.spec_file import SpecFileError, spec_file_lrs

    stop = args.steps if args.steps is not None else DEFAULT_STEPS
    try:
        steps, lrs, _ = spec_file_lrs(path, 0, stop, _plot_every(stop))
    except SpecFileError as error:
        raise UsageError(str(error)) from None
    return Curve(title=path.name, steps=steps, lrs=lrs)


def _run_curve(client: Any, args: argparse.Namespace) -> Curve:
    import lrclient

    try:
        run = client.get_run(args.target)
    except lrclient.NotFound as error:
        if args.target.endswith(".json"):
            raise lrclient.NotFound(404, f"{error.detail} (and there is no file {args.target!r} either)") from None
        raise
    stop = args.steps if args.steps is not None else default_stop(run)
    steps, lrs = fetch_lrs(client, run.run_id, 0, stop, _plot_every(stop))
    reports = [entry for entry in client.iter_reports(run.run_id) if entry.step < stop]
    metric = None
    if args.metric:
        measured = [entry for entry in reports if args.metric in entry.metrics]
        if not measured:
            names = sorted({name for entry in reports for name in entry.metrics})
            raise UsageError(f"run {run.run_id!r} has no report of {args.metric!r} before step {stop}"
                             + (f"; its reports have: {', '.join(names)}" if names else "; it has no reports"))
        metric = Metric(args.metric, [e.step for e in measured], [float(e.metrics[args.metric]) for e in measured])
    reduced_from = [entry.step + 1 for entry in reports if entry.reduced and entry.step + 1 < stop]
    revisions = [revision.from_step for revision in run.revisions if revision.from_step < stop]
    return Curve(title=run.run_id, steps=steps, lrs=lrs, step_unit=run.step_unit, reduced_from=reduced_from,
                 revisions=revisions, metric=metric)


def _plot_every(stop: int) -> int:
    return max(1, math.ceil(stop / PLOT_POINTS))


# --- diff ------------------------------------------------------------------------------------


def _diff(client: Any, args: argparse.Namespace) -> None:
    a, b = client.get_run(args.run_a), client.get_run(args.run_b)
    print(f"--- {a.run_id}\n+++ {b.run_id}")
    changes = differences(a.spec, b.spec)
    print("spec: same" if not changes else "spec:")
    for path, left, right in changes:
        print(f"  {path}: {_shown(left)} -> {_shown(right)}")
    left_revisions = [_revision(r) for r in a.revisions]
    right_revisions = [_revision(r) for r in b.revisions]
    if left_revisions == right_revisions:
        print(f"revisions: same ({len(left_revisions) or 'none'})")
    else:
        print(f"revisions: {len(left_revisions)} -> {len(right_revisions)}")
        for index in range(max(len(left_revisions), len(right_revisions))):
            left = left_revisions[index] if index < len(left_revisions) else MISSING
            right = right_revisions[index] if index < len(right_revisions) else MISSING
            if left != right:
                print(f"  [{index}]: {_shown(left)} -> {_shown(right)}")
    stop = args.stop if args.stop is not None else max(default_stop(a), default_stop(b))
    steps, left_lrs = fetch_lrs(client, a.run_id, args.start, stop, args.every)
    _, right_lrs = fetch_lrs(client, b.run_id, args.start, stop, args.every)
    compared = f"lr over steps {args.start}..{stop - 1}" + (f" every {args.every}" if args.every > 1 else "")
    comparison = compare_lrs(steps, left_lrs, right_lrs)
    if comparison is None:
        print(f"{compared}: same")
        return
    first, worst, worst_step = comparison
    index = steps.index(first)
    print(f"{compared}: first differs at step {first} ({left_lrs[index]!r} -> {right_lrs[index]!r}); "
          f"max relative difference {worst:.6g} at step {worst_step}")


def differences(left: Any, right: Any, path: str = "") -> list[tuple[str, Any, Any]]:
    """(field path, left value, right value) of every leaf that differs; MISSING where a side lacks it."""
    if isinstance(left, Mapping) and isinstance(right, Mapping):
        found = []
        for key in list(left) + [k for k in right if k not in left]:
            found += differences(left.get(key, MISSING), right.get(key, MISSING), f"{path}.{key}" if path else key)
        return found
    if isinstance(left, list) and isinstance(right, list):
        found = []
        for index in range(max(len(left), len(right))):
            found += differences(left[index] if index < len(left) else MISSING,
                                 right[index] if index < len(right) else MISSING, f"{path}[{index}]")
        return found
    return [] if left == right and type(left) is type(right) else [(path, left, right)]


def compare_lrs(steps: Sequence[int], left: Sequence[float], right: Sequence[float]
                ) -> tuple[int, float, int] | None:
    """None when equal at every step; else the first step that differs, the largest relative difference
    |a - b| / max(|a|, |b|) and its step."""
    first, worst, worst_step = None, 0.0, 0
    for step, a, b in zip(steps, left, right):
        if a == b:
            continue
        first = step if first is None else first
        relative = abs(a - b) / max(abs(a), abs(b))
        if relative > worst:
            worst, worst_step = relative, step
    return None if first is None else (first, worst, worst_step)


class _Missing:
    def __repr__(self) -> str:
        return "(absent)"


MISSING: Any = _Missing()


def _revision(revision: Any) -> dict[str, Any]:
    return {"from_step": revision.from_step, "schedule": revision.schedule, "reason": revision.reason}


def _shown(value: Any) -> str:
    if value is MISSING or value is None:
        return "(absent)" if value is MISSING else "null"
    return json.dumps(value) if not isinstance(value, float) else repr(value)


# --- helpers ---------------------------------------------------------------------------------


def _next_step(run: Any) -> int:
    """The step a job resumes at: after the latest report, or 0."""
    return run.latest_step + 1 if run.latest_step is not None else 0


def _first(items: Iterator[Any], count: int) -> Iterator[Any]:
    for index, item in enumerate(items):
        if index >= count:
            return
        yield item


def _table(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(str(cell)) for cell in column) for column in zip(header, *rows)]
    return "\n".join("  ".join(str(cell).ljust(width) for cell, width in zip(line, widths)).rstrip()
                     for line in [header, *rows])


def _or_dash(value: Any) -> str:
    return "-" if value is None else str(value)


def _finite(value: Any) -> Any:
    """`value` with non-finite floats as the strings the API uses ("NaN", "Infinity", "-Infinity")."""
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    if isinstance(value, Mapping):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(item) for item in value]
    return value
