"""The harness: the workload registry, timing, the official SDK's setup, the table, the JSON.

A workload is a function `(Settings) -> Row`, registered with `@workload(...)` in any
module of this package; `python -m bench` imports every module, runs the workloads in
`order`, prints one table and writes the rows as JSON.
"""

from __future__ import annotations

import contextlib
import dataclasses
import gc
import importlib
import os
import pkgutil
import platform
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).parent / "results" / "latest.json"


@dataclasses.dataclass(frozen=True)
class Settings:
    """How a run was asked for: `--quick`, `--repeat`."""

    quick: bool = False
    repeat: int | None = None

    def reps(self, default: int, quick: int = 1) -> int:
        """Repetitions of a timed measurement (its median is reported)."""
        if self.repeat is not None:
            return self.repeat
        return quick if self.quick else default

    def size(self, full: int, quick: int) -> int:
        """A workload size: full, or tiny with `--quick`."""
        return quick if self.quick else full


@dataclasses.dataclass
class Row:
    """One line of the table: our figure, the baseline's, and the requests each sent.

    `workload` and `title` are filled in by the harness from the registration.
    """

    unit: str
    ours: float
    baseline: float
    baseline_name: str
    ours_requests: int
    baseline_requests: int
    target: str
    met: bool | None
    details: dict[str, Any] = dataclasses.field(default_factory=dict)
    ours_samples: list[float] = dataclasses.field(default_factory=list)
    """Every repetition's figure, in `unit` (the row's `ours` is their median)."""
    baseline_samples: list[float] = dataclasses.field(default_factory=list)
    """Every repetition's baseline figure, in `unit` (empty for a fixed target)."""
    workload: str = ""
    title: str = ""

    @property
    def ratio(self) -> float | None:
        """Ours divided by the baseline (below 1: we are smaller or faster)."""
        return self.ours / self.baseline if self.baseline else None

    @property
    def ratios(self) -> list[float]:
        """The ratio of each repetition, ours / baseline (interleaved pairs)."""
        pairs = zip(self.ours_samples, self.baseline_samples, strict=False)
        return [o / b for o, b in pairs if b]

    def as_json(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["ratio"] = self.ratio
        data["spread"] = {
            "ours": spread(self.ours_samples),
            "baseline": spread(self.baseline_samples),
            "ratio": spread(self.ratios),
        }
        return data


@dataclasses.dataclass(frozen=True)
class Workload:
    name: str
    title: str
    order: int
    run: Callable[[Settings], Row]


REGISTRY: dict[str, Workload] = {}


def workload(
    name: str, *, title: str, order: int = 100
) -> Callable[[Callable[[Settings], Row]], Callable[[Settings], Row]]:
    """Register a workload function under `name` (rows are printed by `order`)."""

    def register(run: Callable[[Settings], Row]) -> Callable[[Settings], Row]:
        if name in REGISTRY:
            raise ValueError(f"workload {name!r} is registered twice")
        REGISTRY[name] = Workload(name, title, order, run)
        return run

    return register


def run(work: Workload, settings: Settings) -> Row:
    """Run one workload; its row carries the workload's name and title."""
    started = time.perf_counter()
    row = work.run(settings)
    row.details["workload_s"] = time.perf_counter() - started  # setup and both sides
    return dataclasses.replace(row, workload=work.name, title=work.title)


def load_workloads() -> list[Workload]:
    """Import every module of the `bench` package (registering its workloads), in order."""
    package = importlib.import_module("bench")
    for module in pkgutil.iter_modules(package.__path__):
        if not module.name.startswith("_") and module.name != "harness":
            importlib.import_module(f"bench.{module.name}")
    return sorted(REGISTRY.values(), key=lambda w: (w.order, w.name))


# ---- measuring --------------------------------------------------------------------------


def timed(action: Callable[[], object]) -> float:
    """Seconds one call of `action` takes (garbage collected before, not during)."""
    gc.collect()
    gc.disable()
    try:
        started = time.perf_counter()
        action()
        return time.perf_counter() - started
    finally:
        gc.enable()


def median(samples: list[float]) -> float:
    return statistics.median(samples)


def spread(samples: list[float]) -> dict[str, float] | None:
    """Min, median and max of some samples (None when there are none)."""
    if not samples:
        return None
    return {"n": len(samples), "min": min(samples), "median": median(samples), "max": max(samples)}


def interleaved(sides: dict[str, Callable[[], float]], reps: int) -> dict[str, list[float]]:
    """Run each side `reps` times, alternating sides (and which goes first) each time.

    Each side is a callable returning its own figure for one repetition (seconds, say),
    so setup outside the measured part stays out of it. Drift on a shared machine (other
    work starting or stopping) then hits both sides alike.
    """
    samples: dict[str, list[float]] = {name: [] for name in sides}
    names = list(sides)
    for rep in range(reps):
        for name in names if rep % 2 == 0 else reversed(names):
            samples[name].append(sides[name]())
    return samples


# ---- the official SDK -------------------------------------------------------------------


def isolate_sdk_environment() -> None:
    """Keep the official SDK from reading the caller's credentials or config file."""
    for name in list(os.environ):
        if name.startswith("DATABRICKS_"):
            del os.environ[name]
    os.environ["DATABRICKS_CONFIG_FILE"] = str(Path(__file__).parent / "results" / "absent.cfg")


@contextlib.contextmanager
def sdk_account_client(
    url: str, account_id: str, client_id: str, client_secret: str
) -> Iterator[Any]:
    """The official SDK's `AccountClient` on the emulator (OAuth M2M), closed afterwards."""
    from databricks.sdk import AccountClient  # noqa: PLC0415 - 3 s to import: only when used

    client = AccountClient(
        host=url,
        account_id=account_id,
        client_id=client_id,
        client_secret=client_secret,
        auth_type="oauth-m2m",
    )
    try:
        yield client
    finally:
        client.api_client._api_client._session.close()


def sdk_version() -> str:
    from importlib.metadata import PackageNotFoundError, version  # noqa: PLC0415

    try:
        return version("databricks-sdk")
    except PackageNotFoundError:
        return "not installed"


# ---- output -----------------------------------------------------------------------------


def _number(value: float | None) -> str:
    if value is None:
        return "-"
    if value == 0:
        return "0"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    if abs(value) >= 1:
        return f"{value:.2f}"
    return f"{value:.3g}"


def _range(samples: list[float]) -> str:
    if len(samples) < 2:
        return "1 run" if samples else "-"
    return f"{_number(min(samples))}-{_number(max(samples))} (n={len(samples)})"


def table(rows: list[Row]) -> str:
    """The rows as one plain-text table."""
    header = [
        "workload",
        "unit",
        "ours",
        "baseline",
        "vs",
        "ratio",
        "ratio range",
        "req ours",
        "req vs",
        "target",
    ]
    lines = [
        [
            row.workload,
            row.unit,
            _number(row.ours),
            _number(row.baseline),
            row.baseline_name,
            _number(row.ratio) + ("x" if row.ratio is not None else ""),
            _range(row.ratios),
            str(row.ours_requests),
            str(row.baseline_requests),
            row.target + ("" if row.met is None else (" ok" if row.met else " MISSED")),
        ]
        for row in rows
    ]
    widths = [max(len(cells[i]) for cells in [header, *lines]) for i in range(len(header))]
    numeric = {2, 3, 5, 6, 7, 8}

    def render(cells: list[str]) -> str:
        return "  ".join(
            cell.rjust(widths[i]) if i in numeric else cell.ljust(widths[i])
            for i, cell in enumerate(cells)
        ).rstrip()

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([render(header), rule, *(render(cells) for cells in lines)])


def environment() -> dict[str, Any]:
    import databricks_access  # noqa: PLC0415

    return {
        "python": sys.version.split()[0],
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "databricks_access": databricks_access.__version__,
        "databricks_sdk": sdk_version(),
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
