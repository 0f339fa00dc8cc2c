"""`Pager` and `AsyncPager`: the lazy listings the services return.

Apart from the drivers, so that the services (and touching `AccountClient`) load
neither httpx nor the HTML rendering until a listing is run or shown.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from typing import TYPE_CHECKING, Generic, TypeVar

if TYPE_CHECKING:
    from databricks_access._account.drivers import AsyncDriver, SyncDriver
    from databricks_access._account.flows import Listing

__all__ = ["AsyncPager", "Pager"]

T = TypeVar("T")


class Pager(Generic[T]):
    """A lazy, auto-paging iterator: pages are fetched as you iterate.

    Iterating again starts a new listing. `collect()` returns every item as a list (one
    that shows as a table in a notebook). In a notebook, a pager shows its first page as
    a table: displaying it sends one request.
    """

    def __init__(self, driver: SyncDriver, listing: Callable[[], Listing[T]]) -> None:
        self._driver = driver
        self._listing = listing

    def __iter__(self) -> Iterator[T]:
        listing = self._listing()
        while (page := listing.next_page()) is not None:
            yield from self._driver.run(page)

    def collect(self) -> list[T]:
        """Every item of every page, as a list."""
        from databricks_access._util.html import HtmlList  # noqa: PLC0415 - when shown

        return HtmlList(self)

    def __repr__(self) -> str:
        return "<Pager: a lazy listing; iterate it, or collect() every item>"

    def _repr_html_(self) -> str:
        listing = self._listing()
        page = listing.next_page()
        items = [] if page is None else self._driver.run(page)
        more = listing.next_page() is not None  # a flow not started: no request
        from databricks_access._util.html import render_rows  # noqa: PLC0415 - when shown

        return render_rows(
            items,
            caption=f"First page of a listing: {len(items)} item(s)",
            more="More pages follow: iterate the pager, or collect() every item." if more else "",
        )


class AsyncPager(Generic[T]):
    """The async twin of `Pager`: `async for item in pager`, or `await pager.collect()`."""

    def __init__(self, driver: AsyncDriver, listing: Callable[[], Listing[T]]) -> None:
        self._driver = driver
        self._listing = listing

    async def _iterate(self) -> AsyncIterator[T]:
        listing = self._listing()
        while (page := listing.next_page()) is not None:
            for item in await self._driver.run(page):
                yield item

    def __aiter__(self) -> AsyncIterator[T]:
        return self._iterate()

    async def collect(self) -> list[T]:
        """Every item of every page, as a list."""
        from databricks_access._util.html import HtmlList  # noqa: PLC0415 - when shown

        return HtmlList([item async for item in self])

    def __repr__(self) -> str:
        return "<AsyncPager: a lazy listing; async for over it, or await collect()>"

    def _repr_html_(self) -> str:
        # Displaying cannot await: say how to see the items instead of fetching them.
        return (
            '<div class="databricks-access"><em>An async listing, not fetched yet: '
            "<code>await pager.collect()</code> shows every item.</em></div>"
        )
