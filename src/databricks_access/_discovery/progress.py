"""Progress reporting for long operations (discovery), and a tqdm adapter.

A progress callback receives `(stage, done, total)`; `total` is None while unknown (a
listing before its last page). A stage is finished when `done == total`. Callbacks may be
called from worker threads (the sync client runs concurrent requests in a thread pool),
but never at the same time: the caller serialises them.

tqdm is not a dependency: `tqdm_progress()` imports it when called, never before. In a
Jupyter kernel without ipywidgets, tqdm's text bars cannot redraw in place (each update
becomes a new line, and tqdm warns): there, `tqdm_progress()` prints two plain lines per
stage instead, and needs no tqdm at all.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import threading
from collections.abc import Callable
from types import TracebackType
from typing import Any, Protocol, TextIO

from typing_extensions import Self

__all__ = ["Progress", "TextBar", "TqdmProgress", "tqdm_progress"]


class Progress(Protocol):
    """A progress callback: `progress(stage, done, total)`.

    Example::

        def show(stage: str, done: int, total: int | None) -> None:
            print(f"{stage}: {done}/{total or '?'}")

        inventory = da.discover(client, progress=show)
    """

    def __call__(self, stage: str, done: int, total: int | None) -> None:
        """Report that `done` of `total` items of `stage` are finished."""
        ...


class TqdmProgress:
    """A `Progress` that draws one tqdm bar per stage; make it with `tqdm_progress()`.

    Bars close when their stage finishes; `close()` (or leaving a `with` block) closes
    any left open, as after an error.
    """

    def __init__(self, bar: Callable[..., Any], **options: Any) -> None:
        self._bar = bar
        self._options = options
        self._bars: dict[str, Any] = {}
        self._closed: set[str] = set()
        self._lock = threading.Lock()

    def __call__(self, stage: str, done: int, total: int | None) -> None:
        """Move the bar of `stage` to `done` (of `total`), opening it on first use."""
        with self._lock:
            if stage in self._closed:
                return
            bar = self._bars.get(stage)
            if bar is None:
                bar = self._bars[stage] = self._bar(
                    **{"desc": stage, **self._options, "total": total}
                )
            if total is not None and bar.total != total:
                bar.total = total
                bar.refresh()
            if done > bar.n:
                bar.update(done - bar.n)
            if total is not None and done >= total:
                bar.close()
                self._closed.add(stage)
                del self._bars[stage]

    def close(self) -> None:
        """Close every bar still open."""
        with self._lock:
            for stage, bar in self._bars.items():
                bar.close()
                self._closed.add(stage)
            self._bars.clear()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class TextBar:
    """A bar that prints a line when its stage starts and one when it ends, nothing more.

    For notebooks without ipywidgets, whose output cannot redraw a line; it has the
    part of tqdm's bar interface that `TqdmProgress` uses.
    """

    def __init__(
        self,
        *,
        desc: str,
        total: int | None = None,
        file: TextIO | None = None,
        disable: bool = False,
        **_options: object,
    ) -> None:
        self.desc = desc
        self.total = total
        self.n = 0
        self._file = file
        self._disable = disable
        self._closed = False
        self._say(f"{desc}: started" + (f", {total:,} to do" if total else ""))

    def _say(self, line: str) -> None:
        if not self._disable:
            stream = self._file or sys.stdout
            stream.write(line + "\n")
            stream.flush()

    def update(self, by: int) -> None:
        """Count `by` more items done."""
        self.n += by

    def refresh(self) -> None:
        """Nothing to redraw."""

    def close(self) -> None:
        """Print how the stage ended (once)."""
        if self._closed:
            return
        self._closed = True
        if self.total is not None and self.n >= self.total:
            self._say(f"{self.desc}: done, {self.n:,}")
        else:
            total = "?" if self.total is None else f"{self.total:,}"
            self._say(f"{self.desc}: stopped at {self.n:,} of {total}")


def _notebook_without_widgets() -> bool:
    """A Jupyter kernel runs this code, and ipywidgets (which tqdm draws with) is missing."""
    if "ipykernel" not in sys.modules:
        return False
    try:
        return importlib.util.find_spec("ipywidgets") is None
    except (ImportError, ValueError):  # a broken or blocked install
        return True


def tqdm_progress(**options: Any) -> TqdmProgress:
    """A progress callback drawing tqdm bars, in notebooks and terminals alike.

    It uses `tqdm.auto`, which picks widgets in Jupyter and text elsewhere. In a Jupyter
    kernel without ipywidgets (install the `notebook` extra to get both), it prints one
    line when each stage starts and one when it ends instead, and needs no tqdm. Extra
    keyword arguments go to every bar (`leave=False`, `file=...`, `disable=...`).

    Example::

        with da.tqdm_progress() as progress:
            inventory = da.discover(client, progress=progress)

    Raises:
        ImportError: tqdm is not installed (`pip install tqdm`), outside such a notebook.
    """
    if _notebook_without_widgets():
        return TqdmProgress(TextBar, **options)
    try:
        # Optional, imported only when used (and untyped: it is not a dependency).
        module = importlib.import_module("tqdm.auto")
    except ImportError as exc:
        raise ImportError(
            "tqdm_progress() needs tqdm, which is not installed: pip install tqdm "
            "(or pass any progress(stage, done, total) callback instead)"
        ) from exc
    return TqdmProgress(module.tqdm, **options)
