"""The REST APIs' lists: one mechanism for filtering and paging, under three conventions.

Twilio pages with `PageSize`, `Page` and a `PageToken` that continues past a row's id;
Restcomm with `Page`, `PageSize` and `AfterSid` (continue past that row), and counts the
rows; Plivo with `limit` and `offset`, and counts them too. Each dialect module names its
parameters and renders its own envelope; what they share is here:

- `ListQuery`: a list's query, narrowed by the filters the request gives, with the
  parameters that its page links repeat;
- `Window`: the rows one page holds, in the order of one key: `limit` rows from `offset`,
  or past the row whose key is `after` (a keyset, which rows added meanwhile do not shift);
- `read`, `count` and `read_counted`, which run them, and `link`, a page's URI.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar
from urllib.parse import urlencode

from sqlalchemy import ColumnElement, Select, func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute

Row = TypeVar("Row")
Key = InstrumentedAttribute[Any] | ColumnElement[Any]


@dataclass
class ListQuery(Generic[Row]):
    """A list's query and the filter parameters its page links repeat, in the order given.

    A filter on what is not stored (a message's type, a number's kind) cannot be queried:
    it is a `keep` predicate, and a list that has one is read whole and cut in Python.
    """

    query: Select[Row]
    params: list[tuple[str, str]] = field(default_factory=list)
    keeps: list[Callable[[Row], bool]] = field(default_factory=list)

    def filter(
        self,
        name: str,
        value: str | None,
        where: Callable[[str], ColumnElement[bool]] | None = None,
        *,
        keep: Callable[[Row], bool] | None = None,
    ) -> None:
        """Narrow the list when the request gives parameter `name` a value (an empty one is
        no filter): to the rows `where(value)` matches, and those `keep` keeps. With neither,
        the parameter is only repeated in the page links."""
        if value:
            conditions = [] if where is None else [where(value)]
            self.add(name, value, *conditions, keep=keep)

    def add(
        self,
        name: str,
        value: str,
        *conditions: ColumnElement[bool],
        keep: Callable[[Row], bool] | None = None,
    ) -> None:
        """Narrow the list to the rows that match `conditions` and that `keep` keeps, and
        repeat `name=value` in its page links."""
        if conditions:
            self.query = self.query.where(*conditions)
        if keep is not None:
            self.keeps.append(keep)
        self.params.append((name, value))

    def kept(self, rows: Iterable[Row]) -> list[Row]:
        return [row for row in rows if all(keep(row) for keep in self.keeps)]


@dataclass(frozen=True, slots=True)
class Window:
    """The rows of one page: `limit` rows in `key` order, from `offset`; with `after`, the
    offset counts from the first row past the one whose key is `after`."""

    key: Key
    limit: int
    offset: int = 0
    after: Any = None
    descending: bool = False


def _ordered(listing: ListQuery[Row], window: Window) -> Select[Row]:
    key, query = window.key, listing.query
    if window.after is not None:
        query = query.where(key < window.after if window.descending else key > window.after)
    return query.order_by(key.desc() if window.descending else key.asc())


async def read(session: AsyncSession, listing: ListQuery[Row], window: Window) -> list[Row]:
    """The rows of `listing` that `window` holds."""
    ordered = _ordered(listing, window)
    if listing.keeps:
        kept = listing.kept(await session.scalars(ordered))
        return kept[window.offset : window.offset + window.limit]
    return list(await session.scalars(ordered.offset(window.offset).limit(window.limit)))


async def count(session: AsyncSession, listing: ListQuery[Any]) -> int:
    """How many rows `listing` has in all."""
    if listing.keeps:
        return len(listing.kept(await session.scalars(listing.query)))
    query = select(func.count()).select_from(listing.query.subquery())
    return int(await session.scalar(query) or 0)


async def read_counted(
    session: AsyncSession, listing: ListQuery[Row], window: Window
) -> tuple[list[Row], int]:
    """The rows `window` holds and how many `listing` has in all; a list filtered in
    Python is read once for both."""
    if listing.keeps and window.after is None:
        kept = listing.kept(await session.scalars(_ordered(listing, window)))
        return kept[window.offset : window.offset + window.limit], len(kept)
    return await read(session, listing, window), await count(session, listing)


def link(path: str, params: Iterable[tuple[str, str | int]]) -> str:
    """A page's URI: `path` with `params`, in their order."""
    return f"{path}?{urlencode(list(params))}"
