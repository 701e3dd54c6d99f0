"""A spec file's learning rates without a server: what `lrserve preview` prints and `lrserve plot SPEC.json`
draws, computed by the very code a run of that spec is served with."""

from __future__ import annotations

import json
from pathlib import Path


class SpecFileError(Exception):
    """The file cannot be read, is not JSON, or holds no valid spec: the message says which, in one line."""


def spec_file_lrs(path: Path, start: int, stop: int, every: int) -> tuple[list[int], list[float], list[str]]:
    """The steps start, start+every, ... < stop, their lrs, and the warnings a PUT of the spec would answer
    (see `accepted_warnings`), for the run spec (or bare schedule) in `path`.

    Needs the `server` extra (pydantic, numpy): the caller checks that it is installed.
    """
    from pydantic import ValidationError

    from lrserve.errors import ServiceError, describe_errors
    from lrserve.run_view import new_view
    from lrserve.runs import range_steps
    from lrserve.spec import RunSpec, accepted_warnings

    try:
        document = json.loads(path.read_text())
        if isinstance(document, dict) and "schedule" not in document:
            document = {"schedule": document}
        spec = RunSpec.model_validate(document)
        warnings = accepted_warnings(spec.schedule)
        view = new_view(spec)
        steps = range_steps(start, stop, every)
        values = view.lrs(steps)
    except OSError as error:
        raise SpecFileError(f"cannot read {path}: {error.strerror}") from None
    except json.JSONDecodeError as error:
        raise SpecFileError(f"{path} is not JSON: {error}") from None
    except ValidationError as error:
        raise SpecFileError(f"invalid spec: {describe_errors(error.errors())}") from None
    except ServiceError as error:
        raise SpecFileError(str(error)) from None
    return [int(step) for step in steps], [float(value) for value in values], warnings
