"""The HTTP layer: validates, calls `Runs`, maps domain errors to status codes."""

from lrserve.api.app import create_app

__all__ = ["create_app"]
