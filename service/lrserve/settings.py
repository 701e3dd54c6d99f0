"""One frozen Settings object, read from the environment and overridden by command-line flags."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

DEFAULT_DATABASE_URL = "sqlite:///./lrserve.db"


@dataclass(frozen=True)
class Settings:
    host: str = "127.0.0.1"
    port: int = 8000
    database_url: str = DEFAULT_DATABASE_URL
    token: str | None = None
    max_body_bytes: int = 1024 * 1024
    access_log: bool = False
    cache_seconds: float = 0.0
    """0 (exact): a read that a write could change checks the run's stamp. More: a view answers any read
    for that long after its last check (with several processes, such reads may lag a write)."""

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> Settings:
        return cls(
            host=env.get("LRSERVE_HOST", cls.host),
            port=int(env.get("LRSERVE_PORT", cls.port)),
            database_url=env.get("LRSERVE_DATABASE_URL", cls.database_url),
            token=env.get("LRSERVE_TOKEN") or None,
            max_body_bytes=int(env.get("LRSERVE_MAX_BODY_BYTES", cls.max_body_bytes)),
            access_log=env.get("LRSERVE_ACCESS_LOG", "") in ("1", "true", "yes"),
            cache_seconds=float(env.get("LRSERVE_CACHE_SECONDS", cls.cache_seconds)),
        )
