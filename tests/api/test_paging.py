"""verbal.api.paging against a small table, each page checked against the same list cut in
Python: offsets, keys in both directions, filters in SQL and in Python, counts and links."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from sqlalchemy import ColumnElement, String, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from verbal.api.paging import ListQuery, Window, count, link, read, read_counted


class Base(DeclarativeBase):
    pass


class Item(Base):
    __tablename__ = "items"

    id: Mapped[int] = mapped_column(primary_key=True)
    colour: Mapped[str] = mapped_column(String(8))


COLOURS = ["red", "blue", "red", "green", "red", "blue", "red", "green", "red", "blue"]
IDS = list(range(1, len(COLOURS) + 1))


@pytest.fixture
async def session() -> AsyncIterator[AsyncSession]:
    engine = create_async_engine("sqlite+aiosqlite:///:memory:")
    async with engine.begin() as connection:
        await connection.run_sync(Base.metadata.create_all)
    sessions = async_sessionmaker(engine, expire_on_commit=False)
    async with sessions.begin() as setup:
        setup.add_all(Item(id=i, colour=c) for i, c in zip(IDS, COLOURS, strict=True))
    async with sessions() as session:
        yield session
    await engine.dispose()


def expected(ids: list[int], window: Window) -> list[int]:
    ordered = sorted(ids, reverse=window.descending)
    if window.after is not None:
        ordered = [
            i for i in ordered if (i < window.after if window.descending else i > window.after)
        ]
    return ordered[window.offset : window.offset + window.limit]


def red_ones(where: bool, keep: bool) -> ListQuery[Item]:
    listing = ListQuery(select(Item))
    listing.filter(
        "colour",
        "red",
        (lambda colour: Item.colour == colour) if where else None,
        keep=(lambda item: item.colour == "red") if keep else None,
    )
    return listing


WINDOWS = [
    Window(Item.id, 3),
    Window(Item.id, 3, offset=2),
    Window(Item.id, 3, offset=2, descending=True),
    Window(Item.id, 4, after=4),
    Window(Item.id, 4, offset=1, after=7, descending=True),
    Window(Item.id, 20, offset=9),
]
REDS = [i for i, c in zip(IDS, COLOURS, strict=True) if c == "red"]


@pytest.mark.parametrize("window", WINDOWS)
@pytest.mark.parametrize(("where", "keep"), [(True, False), (False, True), (True, True)])
async def test_a_filtered_page_is_the_filtered_list_cut(
    session: AsyncSession, window: Window, where: bool, keep: bool
) -> None:
    listing = red_ones(where, keep)
    rows = [item.id for item in await read(session, listing, window)]
    assert rows == expected(REDS, window)
    assert await count(session, listing) == len(REDS)
    counted_rows, total = await read_counted(session, listing, window)
    assert ([item.id for item in counted_rows], total) == (rows, len(REDS))


@pytest.mark.parametrize("window", WINDOWS)
async def test_an_unfiltered_page(session: AsyncSession, window: Window) -> None:
    listing = ListQuery(select(Item))
    assert [item.id for item in await read(session, listing, window)] == expected(IDS, window)
    assert await count(session, listing) == len(IDS)


def test_filters_skip_empty_values_and_links_repeat_the_rest_in_order() -> None:
    listing = ListQuery(select(Item))
    seen: list[str] = []

    def where(value: str) -> ColumnElement[bool]:
        seen.append(value)
        return Item.colour == value

    listing.filter("Colour", "red", where)
    listing.filter("Skipped", None, where)
    listing.filter("Empty", "", where)
    listing.filter("Shown", "a b&c")
    listing.add("Always", "", Item.id > 0)
    assert seen == ["red"]
    assert listing.params == [("Colour", "red"), ("Shown", "a b&c"), ("Always", "")]
    assert link("/x", [("Page", 2), *listing.params]) == (
        "/x?Page=2&Colour=red&Shown=a+b%26c&Always="
    )
