"""Client credentials and the secret stores."""

from __future__ import annotations

import json
import os
import threading
import traceback
from pathlib import Path

import pytest

from databricks_access import (
    ClientCredentials,
    ConfigError,
    EnvSecretStore,
    FileSecretStore,
    SecretStore,
    SecretStoreError,
    StaticSecretStore,
)
from databricks_access._secrets import base as _secrets
from helpers.doctests import run_doctests

SECRET = "dose-RECOGNISABLE-S3CR3T-7f3a9c"
CLIENT_ID = "6f1c2d3e-aaaa-4bbb-8ccc-0123456789ab"


# --- helpers ----------------------------------------------------------------------------------


def write_json(path: Path, data: object) -> None:
    """Replace the file atomically, as a careful writer (or a secret agent) does."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data), encoding="utf-8")
    tmp.replace(path)


def rewrite_in_place(path: Path, text: str, *, keep_mtime: bool) -> None:
    """Overwrite the same inode; optionally put the old mtime back (an undetectable change)."""
    before = path.stat()
    with path.open("r+", encoding="utf-8") as file:
        file.seek(0)
        file.truncate()
        file.write(text)
    if keep_mtime:
        os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    else:
        os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns + 1_000_000_000))


def k8s_secret(root: Path, version: str, client_id: str, client_secret: str) -> None:
    """Lay out (or rotate) a mounted Kubernetes secret: files behind a `..data` symlink."""
    data = root / f"..{version}"
    data.mkdir()
    (data / "client_id").write_text(client_id + "\n", encoding="utf-8")
    (data / "client_secret").write_text(client_secret + "\n", encoding="utf-8")
    link = root / "..data_tmp"
    link.symlink_to(data.name)
    link.replace(root / "..data")  # the atomic swap the kubelet does
    for name in ("client_id", "client_secret"):
        if not (root / name).is_symlink():
            (root / name).symlink_to(f"..data/{name}")


def exception_chain(exc: BaseException) -> list[BaseException]:
    found: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in found:
        found.append(current)
        current = current.__cause__ or current.__context__
    return found


def assert_no_secret(exc: BaseException) -> None:
    """No trace of SECRET in the error, its chain, or the traceback text."""
    text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    assert SECRET not in text
    for error in exception_chain(exc):
        assert SECRET not in str(error)
        assert SECRET not in repr(error)
        assert SECRET not in repr(error.args)
        for attribute in ("doc", "object", "filename", "problems"):
            value = getattr(error, attribute, None)
            if isinstance(value, bytes):
                assert SECRET.encode() not in value
            else:
                assert SECRET not in repr(value)


# --- ClientCredentials ---------------------------------------------------------------------------


def test_credentials_hide_the_secret():
    credentials = ClientCredentials(CLIENT_ID, SECRET)
    expected = f"ClientCredentials(client_id='{CLIENT_ID}', client_secret='***')"
    assert repr(credentials) == expected
    assert str(credentials) == expected
    assert f"{credentials}" == expected
    assert SECRET not in repr([credentials])
    assert credentials.client_secret == SECRET


def test_credentials_by_keyword_compare_and_hash():
    credentials = ClientCredentials(client_id=CLIENT_ID, client_secret=SECRET)
    assert credentials == ClientCredentials(CLIENT_ID, SECRET)
    assert credentials != ClientCredentials(CLIENT_ID, SECRET + "x")
    assert hash(credentials) == hash(ClientCredentials(CLIENT_ID, SECRET))


@pytest.mark.parametrize(
    ("client_id", "client_secret", "fields"),
    [
        ("", SECRET, ("client_id",)),
        ("  ", SECRET, ("client_id",)),
        (CLIENT_ID, "", ("client_secret",)),
        (CLIENT_ID, " \n", ("client_secret",)),
        ("", "", ("client_id", "client_secret")),
        (None, SECRET, ("client_id",)),
        (CLIENT_ID, 12345, ("client_secret",)),
    ],
)
def test_empty_credentials_are_a_config_error(client_id, client_secret, fields):
    with pytest.raises(ConfigError) as info:
        ClientCredentials(client_id, client_secret)
    assert info.value.fields == fields
    assert_no_secret(info.value)


# --- the protocol -----------------------------------------------------------------------------


def test_every_store_is_a_secret_store(tmp_path):
    stores = [
        EnvSecretStore(environ={}),
        FileSecretStore(tmp_path / "sp.json"),
        StaticSecretStore(CLIENT_ID, SECRET),
    ]
    for store in stores:
        assert isinstance(store, SecretStore)
    assert not isinstance(object(), SecretStore)


# --- EnvSecretStore -----------------------------------------------------------------------------


def test_env_store_reads_both_variables():
    store = EnvSecretStore(
        environ={"DATABRICKS_CLIENT_ID": f" {CLIENT_ID}\n", "DATABRICKS_CLIENT_SECRET": SECRET}
    )
    assert store.get_credentials() == ClientCredentials(CLIENT_ID, SECRET)
    assert store.get_credentials(refresh=True) == ClientCredentials(CLIENT_ID, SECRET)


def test_env_store_reads_at_each_call(monkeypatch):
    monkeypatch.setenv("DATABRICKS_CLIENT_ID", CLIENT_ID)
    monkeypatch.setenv("DATABRICKS_CLIENT_SECRET", SECRET)
    store = EnvSecretStore()
    assert store.get_credentials().client_secret == SECRET
    monkeypatch.setenv("DATABRICKS_CLIENT_SECRET", SECRET + "-rotated")
    assert store.get_credentials().client_secret == SECRET + "-rotated"


def test_env_store_custom_variable_names():
    env = {"SP_ID": CLIENT_ID, "SP_SECRET": SECRET}
    store = EnvSecretStore("SP_ID", "SP_SECRET", environ=env)
    assert store.get_credentials().client_id == CLIENT_ID
    assert repr(store) == "EnvSecretStore(client_id_var='SP_ID', client_secret_var='SP_SECRET')"


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({"DATABRICKS_CLIENT_SECRET": SECRET}, "DATABRICKS_CLIENT_ID is not set or empty"),
        (
            {"DATABRICKS_CLIENT_ID": "", "DATABRICKS_CLIENT_SECRET": SECRET},
            "DATABRICKS_CLIENT_ID is not set or empty",
        ),
        ({"DATABRICKS_CLIENT_ID": CLIENT_ID}, "DATABRICKS_CLIENT_SECRET is not set or empty"),
        (
            {"DATABRICKS_CLIENT_ID": CLIENT_ID, "DATABRICKS_CLIENT_SECRET": "  \n"},
            "DATABRICKS_CLIENT_SECRET is not set or empty",
        ),
        ({}, "DATABRICKS_CLIENT_ID and DATABRICKS_CLIENT_SECRET are not set or empty"),
    ],
)
def test_env_store_names_missing_variables(environ, expected):
    store = EnvSecretStore(environ=environ)
    with pytest.raises(SecretStoreError) as info:
        store.get_credentials()
    assert str(info.value) == f"{store!r}: {expected}"
    assert str(info.value).startswith("EnvSecretStore(client_id_var='DATABRICKS_CLIENT_ID'")
    assert_no_secret(info.value)


@pytest.mark.parametrize(
    ("args", "field"), [(("",), "client_id_var"), (("A", " "), "client_secret_var")]
)
def test_env_store_refuses_empty_variable_names(args, field):
    with pytest.raises(ConfigError) as info:
        EnvSecretStore(*args)
    assert info.value.fields == (field,)


def test_env_store_repr_shows_no_value():
    store = EnvSecretStore(
        environ={"DATABRICKS_CLIENT_ID": CLIENT_ID, "DATABRICKS_CLIENT_SECRET": SECRET}
    )
    assert SECRET not in repr(store)
    assert CLIENT_ID not in repr(store)


# --- StaticSecretStore -------------------------------------------------------------------------


def test_static_store():
    store = StaticSecretStore(CLIENT_ID, SECRET)
    assert store.get_credentials() == ClientCredentials(CLIENT_ID, SECRET)
    assert store.get_credentials(refresh=True) is store.get_credentials()
    assert repr(store) == f"StaticSecretStore(client_id='{CLIENT_ID}', client_secret='***')"
    assert SECRET not in str(store)


def test_static_store_refuses_empty_values():
    with pytest.raises(ConfigError) as info:
        StaticSecretStore("", SECRET)
    assert info.value.fields == ("client_id",)
    assert_no_secret(info.value)


# --- FileSecretStore: JSON file ----------------------------------------------------------------


def test_json_file(tmp_path):
    path = tmp_path / "sp.json"
    write_json(path, {"client_id": CLIENT_ID, "client_secret": SECRET, "comment": 1})
    store = FileSecretStore(path)
    assert store.get_credentials() == ClientCredentials(CLIENT_ID, SECRET)
    assert store.path == path
    assert repr(store) == f"FileSecretStore({str(path)!r})"
    assert SECRET not in repr(store)


def test_json_file_with_bom_and_whitespace(tmp_path):
    path = tmp_path / "sp.json"
    text = json.dumps({"client_id": f" {CLIENT_ID} ", "client_secret": SECRET + "\n"})
    path.write_bytes(b"\xef\xbb\xbf" + text.encode() + b"\n")
    assert FileSecretStore(str(path)).get_credentials() == ClientCredentials(CLIENT_ID, SECRET)


def test_home_is_expanded(monkeypatch, tmp_path):
    monkeypatch.setenv("HOME", str(tmp_path))
    assert FileSecretStore("~/sp.json").path == tmp_path / "sp.json"


@pytest.mark.parametrize("path", ["", "  "])
def test_empty_path_is_a_config_error(path):
    with pytest.raises(ConfigError) as info:
        FileSecretStore(path)
    assert info.value.fields == ("path",)


def test_rotation_by_atomic_replace_is_seen_without_refresh(tmp_path):
    path = tmp_path / "sp.json"
    write_json(path, {"client_id": CLIENT_ID, "client_secret": SECRET})
    store = FileSecretStore(path)
    assert store.get_credentials().client_secret == SECRET
    write_json(path, {"client_id": CLIENT_ID, "client_secret": "rotated"})
    assert store.get_credentials().client_secret == "rotated"


def test_rotation_in_place_is_seen_without_refresh(tmp_path):
    path = tmp_path / "sp.json"
    write_json(path, {"client_id": CLIENT_ID, "client_secret": "aaaa"})
    store = FileSecretStore(path)
    assert store.get_credentials().client_secret == "aaaa"
    rewrite_in_place(
        path, json.dumps({"client_id": CLIENT_ID, "client_secret": "bbbb"}), keep_mtime=False
    )
    assert store.get_credentials().client_secret == "bbbb"


def test_credentials_are_cached_until_refresh(tmp_path):
    path = tmp_path / "sp.json"
    write_json(path, {"client_id": CLIENT_ID, "client_secret": "aaaa"})
    store = FileSecretStore(path)
    first = store.get_credentials()
    assert store.get_credentials() is first
    # Same inode, size and mtime: the cache cannot tell; refresh=True must re-read.
    rewrite_in_place(
        path, json.dumps({"client_id": CLIENT_ID, "client_secret": "bbbb"}), keep_mtime=True
    )
    assert store.get_credentials() is first
    assert store.get_credentials(refresh=True).client_secret == "bbbb"
    assert store.get_credentials().client_secret == "bbbb"


def test_file_appearing_later(tmp_path):
    path = tmp_path / "sp.json"
    store = FileSecretStore(path)
    with pytest.raises(SecretStoreError, match="not found"):
        store.get_credentials()
    write_json(path, {"client_id": CLIENT_ID, "client_secret": SECRET})
    assert store.get_credentials().client_secret == SECRET


def test_a_broken_rotation_is_reported_then_recovers(tmp_path):
    path = tmp_path / "sp.json"
    write_json(path, {"client_id": CLIENT_ID, "client_secret": SECRET})
    store = FileSecretStore(path)
    store.get_credentials()
    write_json(path, {"client_id": CLIENT_ID})
    with pytest.raises(SecretStoreError, match="missing key 'client_secret'"):
        store.get_credentials()
    write_json(path, {"client_id": CLIENT_ID, "client_secret": "new"})
    assert store.get_credentials().client_secret == "new"


# --- FileSecretStore: mounted secret directory ----------------------------------------------------


def test_plain_directory(tmp_path):
    (tmp_path / "client_id").write_text(CLIENT_ID + "\n", encoding="utf-8")
    (tmp_path / "client_secret").write_text(SECRET + "\r\n", encoding="utf-8")
    assert FileSecretStore(tmp_path).get_credentials() == ClientCredentials(CLIENT_ID, SECRET)


def test_kubernetes_secret_rotation(tmp_path):
    k8s_secret(tmp_path, "2024_01_01", CLIENT_ID, SECRET)
    store = FileSecretStore(tmp_path)
    assert store.get_credentials() == ClientCredentials(CLIENT_ID, SECRET)
    k8s_secret(tmp_path, "2024_06_01", CLIENT_ID, "rotated-secret")
    assert store.get_credentials() == ClientCredentials(CLIENT_ID, "rotated-secret")
    assert store.get_credentials(refresh=True).client_secret == "rotated-secret"


def test_directory_rewritten_in_place(tmp_path):
    (tmp_path / "client_id").write_text(CLIENT_ID, encoding="utf-8")
    (tmp_path / "client_secret").write_text("aaaa", encoding="utf-8")
    store = FileSecretStore(tmp_path)
    assert store.get_credentials().client_secret == "aaaa"
    rewrite_in_place(tmp_path / "client_secret", "bbbb", keep_mtime=True)
    assert store.get_credentials().client_secret == "aaaa"
    assert store.get_credentials(refresh=True).client_secret == "bbbb"
    rewrite_in_place(tmp_path / "client_secret", "cccc", keep_mtime=False)
    assert store.get_credentials().client_secret == "cccc"


# --- FileSecretStore: what goes wrong ---------------------------------------------------------


def json_case(content: bytes):
    def make(root: Path) -> Path:
        path = root / "sp.json"
        path.write_bytes(content)
        return path

    return make


def directory_case(client_id: str | bytes | None, client_secret: str | bytes | None):
    def make(root: Path) -> Path:
        path = root / "secret"
        path.mkdir()
        for name, value in (("client_id", client_id), ("client_secret", client_secret)):
            if value is not None:
                (path / name).write_bytes(value if isinstance(value, bytes) else value.encode())
        return path

    return make


def encoded(data: object) -> bytes:
    return json.dumps(data).encode()


FAILURES = [
    ("missing-file", lambda root: root / "nope.json", "not found"),
    ("missing-dir", lambda root: root / "nope" / "secret", "not found"),
    ("empty-file", json_case(b""), "is not valid JSON"),
    (
        "truncated",
        json_case(b'{"client_id": "x", "client_secret": "' + SECRET.encode()),
        "is not valid JSON",
    ),
    ("not-json", json_case(f"client_secret={SECRET}".encode()), "is not valid JSON"),
    ("yaml", json_case(f"client_id: x\nclient_secret: {SECRET}\n".encode()), "is not valid JSON"),
    ("array", json_case(encoded([CLIENT_ID, SECRET])), "found an array"),
    ("string", json_case(encoded(SECRET)), "found a string"),
    ("number", json_case(b"42"), "found a number"),
    ("null", json_case(b"null"), "found null"),
    ("missing-id", json_case(encoded({"client_secret": SECRET})), "missing key 'client_id'"),
    ("missing-secret", json_case(encoded({"client_id": CLIENT_ID})), "missing key 'client_secret'"),
    (
        "missing-both",
        json_case(encoded({SECRET: SECRET})),
        "missing key 'client_id' and 'client_secret'",
    ),
    (
        "empty-id",
        json_case(encoded({"client_id": " ", "client_secret": SECRET})),
        "'client_id' is empty",
    ),
    (
        "empty-secret",
        json_case(encoded({"client_id": CLIENT_ID, "client_secret": ""})),
        "'client_secret' is empty",
    ),
    (
        "id-wrong-type",
        json_case(encoded({"client_id": [SECRET], "client_secret": SECRET})),
        "'client_id' must be a string, found an array",
    ),
    (
        "secret-wrong-type",
        json_case(encoded({"client_id": CLIENT_ID, "client_secret": {"v": SECRET}})),
        "'client_secret' must be a string, found an object",
    ),
    (
        "secret-number",
        json_case(encoded({"client_id": CLIENT_ID, "client_secret": 12345})),
        "'client_secret' must be a string, found a number",
    ),
    (
        "several",
        json_case(encoded({"client_id": True, "other": SECRET})),
        "missing key 'client_secret'; 'client_id' must be a string, found a boolean",
    ),
    ("not-utf8", json_case(b'{"client_secret": "' + SECRET.encode() + b'\xff"}'), "not UTF-8 text"),
    ("too-large", json_case(SECRET.encode() * 5000), "larger than 65536 bytes"),
    ("dir-missing-id", directory_case(None, SECRET), "has no file client_id;"),
    ("dir-missing-secret", directory_case(CLIENT_ID, None), "has no file client_secret;"),
    ("dir-missing-both", directory_case(None, None), "has no file client_id or client_secret;"),
    ("dir-empty-id", directory_case("\n", SECRET), "client_id is empty"),
    ("dir-empty-both", directory_case("", " "), "client_id and client_secret are empty"),
    (
        "dir-not-utf8",
        directory_case(CLIENT_ID, SECRET.encode() + b"\xff"),
        "client_secret is not UTF-8 text",
    ),
]


@pytest.mark.parametrize(
    ("make", "expected"), [case[1:] for case in FAILURES], ids=[case[0] for case in FAILURES]
)
def test_failures_name_the_store_and_the_problem(tmp_path, make, expected):
    path = make(tmp_path)
    store = FileSecretStore(path)
    with pytest.raises(SecretStoreError) as info:
        store.get_credentials()
    message = str(info.value)
    assert message.startswith(f"FileSecretStore({str(path)!r}): ")
    assert expected in message
    assert_no_secret(info.value)
    # The same failure again with refresh, from a warm store too.
    with pytest.raises(SecretStoreError) as again:
        store.get_credentials(refresh=True)
    assert str(again.value) == message


def test_member_that_is_a_directory(tmp_path):
    (tmp_path / "client_id").mkdir()
    (tmp_path / "client_secret").write_text(SECRET, encoding="utf-8")
    with pytest.raises(SecretStoreError, match="client_id is not a regular file") as info:
        FileSecretStore(tmp_path).get_credentials()
    assert_no_secret(info.value)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs here")
def test_a_fifo_is_not_read(tmp_path):
    path = tmp_path / "fifo"
    os.mkfifo(path)
    with pytest.raises(SecretStoreError, match="neither a regular file nor a directory"):
        FileSecretStore(path).get_credentials()


def test_unreadable_file(tmp_path, monkeypatch):
    path = tmp_path / "sp.json"
    write_json(path, {"client_id": CLIENT_ID, "client_secret": SECRET})

    def refuse(self, *args, **kwargs):
        raise PermissionError(13, "Permission denied", str(self))

    monkeypatch.setattr(Path, "open", refuse)
    with pytest.raises(SecretStoreError) as info:
        FileSecretStore(path).get_credentials()
    assert (
        str(info.value)
        == f"FileSecretStore({str(path)!r}): cannot read the file: Permission denied"
    )
    assert_no_secret(info.value)


def test_unstattable_path(tmp_path, monkeypatch):
    def refuse(self, *args, **kwargs):
        raise PermissionError(13, "Permission denied", str(self))

    monkeypatch.setattr(Path, "stat", refuse)
    with pytest.raises(SecretStoreError, match="cannot read the path: Permission denied"):
        FileSecretStore(tmp_path / "sp.json").get_credentials()


@pytest.mark.skipif(
    os.name != "posix" or os.geteuid() == 0, reason="needs POSIX permissions, not root"
)
def test_permission_denied_for_real(tmp_path):
    path = tmp_path / "sp.json"
    write_json(path, {"client_id": CLIENT_ID, "client_secret": SECRET})
    path.chmod(0)
    with pytest.raises(SecretStoreError, match="Permission denied"):
        FileSecretStore(path).get_credentials()


# --- FileSecretStore: reads racing with writes -------------------------------------------------


def test_a_change_during_the_read_is_read_again(tmp_path, monkeypatch):
    path = tmp_path / "sp.json"
    write_json(path, {"client_id": CLIENT_ID, "client_secret": "old"})
    store = FileSecretStore(path)
    original = FileSecretStore._read_text
    calls: list[str] = []

    def racing(self, file, name):
        text = original(self, file, name)
        if not calls:
            write_json(path, {"client_id": CLIENT_ID, "client_secret": "new"})
        calls.append(text)
        return text

    monkeypatch.setattr(FileSecretStore, "_read_text", racing)
    assert store.get_credentials().client_secret == "new"
    assert len(calls) == 2


def test_a_torn_write_is_read_again(tmp_path, monkeypatch):
    path = tmp_path / "sp.json"
    write_json(path, {"client_id": CLIENT_ID, "client_secret": SECRET})
    store = FileSecretStore(path)
    original = FileSecretStore._read_text
    calls: list[str] = []

    def torn(self, file, name):
        calls.append(name)
        if len(calls) == 1:
            write_json(path, {"client_id": CLIENT_ID, "client_secret": "whole"})
            return '{"client_id": "x", "client_se'
        return original(self, file, name)

    monkeypatch.setattr(FileSecretStore, "_read_text", torn)
    assert store.get_credentials().client_secret == "whole"


def test_a_file_that_never_settles(tmp_path, monkeypatch):
    path = tmp_path / "sp.json"
    write_json(path, {"client_id": CLIENT_ID, "client_secret": SECRET})
    store = FileSecretStore(path)
    original = FileSecretStore._read_text
    counter = iter(range(100))

    def churning(self, file, name):
        text = original(self, file, name)
        write_json(path, {"client_id": CLIENT_ID, "client_secret": f"v{next(counter)}"})
        return text

    monkeypatch.setattr(FileSecretStore, "_read_text", churning)
    with pytest.raises(SecretStoreError, match="kept changing while being read") as info:
        store.get_credentials()
    assert_no_secret(info.value)


def test_concurrent_readers_during_rotation_see_consistent_pairs(tmp_path):
    k8s_secret(tmp_path, "v0", "id-0", "secret-0")
    store = FileSecretStore(tmp_path)
    valid = {ClientCredentials(f"id-{n}", f"secret-{n}") for n in range(30)}
    seen: list[ClientCredentials] = []
    errors: list[BaseException] = []
    stop = threading.Event()

    def reader():
        while not stop.is_set():
            try:
                seen.append(store.get_credentials())
            except BaseException as exc:  # collected and asserted below
                errors.append(exc)

    threads = [threading.Thread(target=reader) for _ in range(4)]
    for thread in threads:
        thread.start()
    try:
        for n in range(1, 30):
            k8s_secret(tmp_path, f"v{n}", f"id-{n}", f"secret-{n}")
    finally:
        stop.set()
        for thread in threads:
            thread.join()
    assert set(seen) <= valid
    # A reader may lose the race with a swap three times running; never anything else.
    assert all("kept changing" in str(error) for error in errors), errors
    assert store.get_credentials() == ClientCredentials("id-29", "secret-29")


# --- the examples in the docstrings run --------------------------------------------------------


def test_docstring_examples():
    result = run_doctests(_secrets)
    assert result.attempted > 0
    assert result.failed == 0
