"""`databricks-access emulator`: an emulated account to try the command line on.

It serves a small `FakeAccount` over HTTP on 127.0.0.1 and writes the two files a
command needs to reach it: an `integration.toml` naming the account, its SQLite lease
store and a `file:` secret store, and that store's `credentials.json` (readable by its
owner only). The service principal's secret is written to that file, never printed.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

from databricks_access._errors import ConfigError

__all__ = ["serve_emulator"]

_USERS = (
    ("alice@example.com", "Alice"),
    ("bob@example.com", "Bob"),
    ("carol@example.com", "Carol"),
    ("ann@example.com", "Ann"),
)
_CONFIG = "integration.toml"
_CREDENTIALS = "credentials.json"
_LEASES = "leases.db"


def _toml_string(text: str) -> str:
    # A JSON string is a valid TOML basic string (same escapes).
    return json.dumps(text)


@contextlib.contextmanager
def _folder(directory: Path | None) -> Iterator[Path]:
    """The folder for the files: the one given (kept), else a temporary one (removed)."""
    if directory is not None:
        yield directory
        return
    with tempfile.TemporaryDirectory(prefix="databricks-access-emulator-") as tmp:
        yield Path(tmp)


def _check_folder(directory: Path | None) -> None:
    """Refuse, before anything starts, a folder that is missing or holds our files."""
    if directory is None:
        return
    if not directory.is_dir():
        raise ConfigError(f"{str(directory)!r} is not an existing directory", "--dir")
    taken = [name for name in (_CONFIG, _CREDENTIALS, _LEASES) if (directory / name).exists()]
    if taken:
        raise ConfigError(
            f"{str(directory)!r} already holds {', '.join(taken)}; choose an empty directory "
            "(nothing is overwritten)",
            "--dir",
        )


def serve_emulator(
    *,
    out: Callable[[str], None],
    stop: threading.Event,
    directory: Path | None = None,
    port: int = 0,
) -> str:
    """Serve an emulated account until `stop` is set; returns the folder it used.

    Args:
        out: Where each line of the instructions goes.
        stop: Set it (a signal handler does) to stop serving.
        directory: Where to write the configuration and the lease store; default a
            temporary directory, removed when the emulator stops.
        port: The port on 127.0.0.1; 0 picks a free one.

    Raises:
        ConfigError: `directory` does not exist or already holds the files.
    """
    from databricks_access.testing import FakeAccount  # noqa: PLC0415 - only here

    _check_folder(directory)
    fake = FakeAccount()
    connector = fake.add_service_principal("jit-connector")
    ids = {name: fake.add_user(name, display) for name, display in _USERS}
    readers = fake.add_group("prod-data-readers", members=[ids["bob@example.com"]])
    fake.add_group("prod-data-writers")
    workspace = fake.add_workspace("prod", workspace_id=1234)
    fake.assign(workspace, readers, ["USER"])
    with _folder(directory) as chosen, fake.serve(port=port) as url:
        folder = chosen.absolute()
        credentials = folder / _CREDENTIALS
        # Created readable by its owner only, before the secret is written into it.
        fd = os.open(credentials, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as file:
            json.dump(
                {"client_id": connector.client_id, "client_secret": connector.client_secret},
                file,
            )
        config = folder / _CONFIG
        lines = [
            f"name = {_toml_string('emulator')}",
            f"accounts_url = {_toml_string(url)}",
            f"account_id = {_toml_string(fake.account_id)}",
            "allow_custom_host = true  # the emulator is on 127.0.0.1",
            "allow_insecure_http = true  # plain http, on loopback only",
            f"integration_owners = [{_toml_string('ann@example.com')}]",
            f"lease_store = {_toml_string('sqlite:///' + str(folder / _LEASES))}",
            f"secret_store = {_toml_string('file:' + str(credentials))}",
        ]
        config.write_text("\n".join(lines) + "\n", encoding="utf-8")
        kept = "kept" if directory is not None else "removed"
        for line in (
            f"emulator: an emulated Databricks account at {url}",
            "  users: " + ", ".join(name for name, _ in _USERS),
            "  groups: prod-data-readers (bob@example.com is a standing member), prod-data-writers",
            "  integration owner (approver): ann@example.com",
            "",
            f"configuration, in {config}:",
            *(f"  {entry}" for entry in lines),
            "",
            "in another terminal:",
            f"  export DATABRICKS_ACCESS_CONFIG={config}",
            "  databricks-access doctor",
            (
                "  databricks-access grant alice@example.com prod-data-readers --ttl 15m "
                "--reason try-it"
            ),
            "  databricks-access leases",
            "",
            f"stop with Ctrl-C (the folder {folder} is then {kept})",
        ):
            out(line)
        stop.wait()
    return str(folder)
