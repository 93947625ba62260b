"""Persistence: the schema, the connection, and migrations applied on start."""

from verbal.store.database import (
    create_engine,
    migrate,
    normalize_url,
    read_sessions,
    session_factory,
)

__all__ = ["create_engine", "migrate", "normalize_url", "read_sessions", "session_factory"]
