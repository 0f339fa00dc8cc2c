"""Import time, in fresh interpreters."""

from __future__ import annotations

import subprocess
import sys
import time

from bench.harness import Row, Settings, median, workload

BARE = "pass"
OURS = "import databricks_access"
OURS_IN_USE = "import databricks_access; databricks_access.AccountClient"
SDK = "import databricks.sdk"
SDK_IN_USE = "import databricks.sdk; databricks.sdk.AccountClient"


def _run(code: str) -> float:
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], check=True)
    return time.perf_counter() - started


@workload(
    "import_time",
    title="import with AccountClient touched, in a fresh interpreter, minus a bare "
    "`python -c pass`",
    order=10,
)
def import_time(settings: Settings) -> Row:
    reps = settings.reps(7)
    # --quick: only what the row reports (the bare imports are details).
    codes = (
        (BARE, OURS_IN_USE, SDK_IN_USE)
        if settings.quick
        else (BARE, OURS, OURS_IN_USE, SDK, SDK_IN_USE)
    )
    samples: dict[str, list[float]] = {code: [] for code in codes}
    if not settings.quick:
        _run(SDK)  # warm the file cache: a first import of 170k lines reads them from disk
    for _ in range(reps):
        for code, times in samples.items():  # interleaved, so drift hits each alike
            times.append(_run(code))
    bare = median(samples[BARE])
    ms = {code: max(median(times) - bare, 0.0) * 1000 for code, times in samples.items()}
    ratio = ms[OURS_IN_USE] / ms[SDK_IN_USE] if ms[SDK_IN_USE] else None

    def net(code: str) -> list[float]:
        return [max(t - bare, 0.0) * 1000 for t in samples[code]]

    return Row(
        unit="ms",
        ours=ms[OURS_IN_USE],
        baseline=ms[SDK_IN_USE],
        baseline_name="sdk",
        ours_requests=0,
        baseline_requests=0,
        target="ratio <= 0.1",
        met=None if ratio is None else ratio <= 0.1,
        details={
            "repetitions": reps,
            "bare_interpreter_ms": bare * 1000,
            "ours_bare_import_ms": ms.get(OURS),
            "sdk_bare_import_ms": ms.get(SDK),
            "note": (
                "Both sides touch their AccountClient, so what is loaded is usable: "
                "`import databricks_access` alone loads names lazily (ours_bare_import_ms)."
            ),
            "samples_s": samples,
        },
        ours_samples=net(OURS_IN_USE),
        baseline_samples=net(SDK_IN_USE),
    )
