"""One frozen Settings object, read from the environment and overridden by command-line flags.

Every way of starting the service reads the same settings: `lrserve serve` merges its flags over the
environment, and each worker process (or `uvicorn --factory lrserve.api:create_app`) reads them back
from the environment with `Settings.from_env()`.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

DEFAULT_DATABASE_URL = "sqlite:///./lrserve.db"


class SettingsError(ValueError):
    """A setting that cannot be used; the message names the flag or variable, the rule and the value."""


@dataclass(frozen=True)
class Settings:
    host: str = "127.0.0.1"
    port: int = 8000
    database_url: str = DEFAULT_DATABASE_URL
    tokens: tuple[str, ...] = ()
    """Bearer tokens that may do everything (LRSERVE_TOKEN, comma-separated for rotation); none: no auth."""
    read_tokens: tuple[str, ...] = ()
    """Bearer tokens that may only read: GET and HEAD (LRSERVE_READ_TOKEN)."""
    max_body_bytes: int = 1024 * 1024
    access_log: bool = False
    cache_seconds: float = 0.0
    """0 (exact): a read that a write could change checks the run's stamp. More: a view answers any read
    for that long after its last check (with several processes, such reads may lag a write)."""
    workers: int = 1
    """Processes serving one port (uvicorn's multiprocess supervisor when more than 1)."""
    shutdown_timeout: float = 10.0
    """On SIGTERM/SIGINT, in-flight requests still running after this many seconds are cut."""

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ,
                 flags: Mapping[str, str | None] | None = None) -> Settings:
        """Each setting from its flag when given (keyed by field name), else its variable, else the default.

        Raises SettingsError naming the flag or variable whose value cannot be used.
        """
        flags = flags or {}
        values: dict[str, Any] = {}
        for option in OPTIONS:
            given = flags.get(option.field)
            if given is not None and option.flag is not None:
                values[option.field] = option.parse(given, option.flag)
            elif option.variable in env:
                values[option.field] = option.parse(env[option.variable], option.variable)
        settings = cls(**values)
        if settings.read_tokens and not settings.tokens:
            raise SettingsError("LRSERVE_READ_TOKEN is set but LRSERVE_TOKEN is not: nobody could write; "
                                "set LRSERVE_TOKEN too (or unset LRSERVE_READ_TOKEN to serve without auth)")
        return settings

    @property
    def auth(self) -> bool:
        return bool(self.tokens)


def flags_as_env(flags: Mapping[str, str | None]) -> dict[str, str]:
    """The LRSERVE_* variables that carry the given flags to another process (a worker reads them back)."""
    variables = {option.field: option.variable for option in OPTIONS if option.flag is not None}
    return {variables[field]: value for field, value in flags.items() if value is not None}


def masked_url(url: str) -> str:
    """`url` fit for a log line: a password in the authority or in a `password=` parameter becomes ***."""
    parts = urlsplit(url)
    netloc = parts.netloc
    if parts.password is not None:
        user, _, host = netloc.rpartition("@")
        netloc = f"{user.partition(':')[0]}:***@{host}"
    query = parts.query
    if "password=" in query:
        query = urlencode([(k, "***" if k == "password" else v) for k, v in parse_qsl(query, keep_blank_values=True)],
                          safe="*")
    if (netloc, query) == (parts.netloc, parts.query):
        return url  # as written: urlunsplit would turn sqlite://// into sqlite://
    return urlunsplit(parts._replace(netloc=netloc, query=query))


# --- the table of options ------------------------------------------------------------------


@dataclass(frozen=True)
class Option:
    field: str
    variable: str
    flag: str | None
    parse: Callable[[str, str], Any]


def _text(raw: str, name: str) -> str:
    return raw


def _tokens(raw: str, name: str) -> tuple[str, ...]:
    """Comma-separated tokens, each stripped of surrounding whitespace (a secret file's trailing newline).

    Set but empty (or an empty entry, as in "a,,b") is refused: silently serving without auth, or with
    a token nobody meant, is worse than not starting.
    """
    tokens = tuple(token.strip() for token in raw.split(","))
    if not any(tokens):
        raise SettingsError(f"{name} is set but empty: set it to a token (or several, comma-separated), "
                            "or unset it to serve without auth")
    if not all(tokens):
        raise SettingsError(f"{name} has an empty token between its commas (received {len(tokens)} entries); "
                            "separate tokens with single commas")
    return tokens


def _switch(raw: str, name: str) -> bool:
    return raw in ("1", "true", "yes")


def _integer(minimum: int, maximum: int | None = None) -> Callable[[str, str], int]:
    rule = f"an integer >= {minimum}" if maximum is None else f"an integer from {minimum} to {maximum}"

    def parse(raw: str, name: str) -> int:
        try:
            value = int(raw.strip())
        except ValueError:
            value = None
        if value is None or value < minimum or (maximum is not None and value > maximum):
            raise SettingsError(f"{name} must be {rule} (received {raw!r})")
        return value

    return parse


def _seconds(raw: str, name: str) -> float:
    try:
        value = float(raw.strip())
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value >= 0):
        raise SettingsError(f"{name} must be a number of seconds >= 0 (received {raw!r})")
    return value


OPTIONS = (
    Option("host", "LRSERVE_HOST", "--host", _text),
    Option("port", "LRSERVE_PORT", "--port", _integer(1, 65535)),
    Option("database_url", "LRSERVE_DATABASE_URL", "--database", _text),
    Option("tokens", "LRSERVE_TOKEN", None, _tokens),
    Option("read_tokens", "LRSERVE_READ_TOKEN", None, _tokens),
    Option("max_body_bytes", "LRSERVE_MAX_BODY_BYTES", None, _integer(1)),
    Option("access_log", "LRSERVE_ACCESS_LOG", None, _switch),
    Option("cache_seconds", "LRSERVE_CACHE_SECONDS", None, _seconds),
    Option("workers", "LRSERVE_WORKERS", "--workers", _integer(1)),
    Option("shutdown_timeout", "LRSERVE_SHUTDOWN_TIMEOUT", "--shutdown-timeout", _seconds),
)
