"""HTML for notebooks: how models, leases and reports show in Jupyter.

`render_html(obj)` draws any attrs value (a `Group`, a `User`, a `Lease`, ...) as a
table of its fields, and a list of them as one table with a row each; `render_table(rows)`
draws records (lists of dicts). Everything that comes from the account or a user is
passed through `html.escape`, so a display name such as `<script>` shows as text and
never runs.

A field whose None means something (a group's `members` not fetched) says so through its
attrs metadata `html_none`; an empty list shows as "none", so the two never look alike.
`HtmlList` is a plain list that draws itself as a table: what listings return.

This module imports no model: the models attach `_repr_html_ = render_html` in their
class bodies, and it renders them by their attrs fields.
"""

from __future__ import annotations

import datetime as dt
import enum
import html
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, cast

import attrs

__all__ = ["HtmlList", "render_html", "render_rows", "render_table"]

_LIST_ITEMS = 10
_TEXT_LIMIT = 200
_TABLE_STYLE = "border-collapse:collapse;text-align:left"
_CELL_STYLE = "padding:2px 8px;text-align:left;vertical-align:top"
# Fields that name a thing, best first: the label of a nested value in a cell.
_NAME_FIELDS = ("display_name", "display", "user_name", "group_name", "name", "role")
_ID_FIELDS = ("id", "value", "principal_id", "workspace_id")


def _fields(value: object) -> tuple[attrs.Attribute[Any], ...]:
    return tuple(attrs.fields(cast("type[attrs.AttrsInstance]", type(value))))


def _escape(text: object) -> str:
    return html.escape(str(text), quote=True)


def _scalar(value: object) -> str:
    """Plain text for a value (not yet escaped)."""
    if isinstance(value, enum.Enum):
        return str(value.value)
    if isinstance(value, dt.datetime):
        return value.isoformat(timespec="seconds")
    if isinstance(value, (dt.date, dt.time)):
        return value.isoformat()
    if isinstance(value, dt.timedelta):
        return str(value)
    text = str(value)
    return text if len(text) <= _TEXT_LIMIT else text[: _TEXT_LIMIT - 1] + "…"


def _label(value: object) -> str:
    """A short text for a nested value: a member, a group reference, a name."""
    if value is None:
        return ""
    if isinstance(value, (str, int, float, bool, enum.Enum, dt.date, dt.time, dt.timedelta)):
        return _scalar(value)
    if attrs.has(type(value)):
        # Values with their own short form (a PrincipalRef prints as `Users/123`).
        if type(value).__str__ is not object.__str__:
            return _scalar(value)
        fields = {f.name for f in _fields(value)}
        name = next(
            (getattr(value, f) for f in _NAME_FIELDS if f in fields and getattr(value, f)), None
        )
        ident = next(
            (getattr(value, f) for f in _ID_FIELDS if f in fields and getattr(value, f)), None
        )
        if isinstance(name, (str, int)) and ident is not None and str(ident) != str(name):
            return f"{_scalar(name)} ({_scalar(ident)})"
        if isinstance(name, (str, int)):
            return _scalar(name)
        if ident is not None:
            return _scalar(ident)
        parts = (f"{f.name}={_label(getattr(value, f.name))}" for f in _fields(value))
        return f"{type(value).__name__}({', '.join(parts)})"
    if isinstance(value, Mapping):
        return ", ".join(f"{_label(k)}: {_label(v)}" for k, v in value.items())
    if isinstance(value, (list, tuple, set, frozenset)):
        return ", ".join(_label(v) for v in value)
    return _scalar(value)


def _cell(value: object, none: str | None = None) -> str:
    """The escaped HTML of one table cell; `none` is what a None means, if anything."""
    if value is None and none is not None:
        return f"<em>{_escape(none)}</em>"
    if isinstance(value, (list, tuple, set, frozenset)) and not attrs.has(type(value)):
        items = list(value)
        if not items:
            return "<em>none</em>"
        shown = ", ".join(_escape(_label(v)) for v in items[:_LIST_ITEMS])
        if len(items) > _LIST_ITEMS:
            shown += f" <em>… and {len(items) - _LIST_ITEMS} more</em>"
        return shown
    return _escape(_label(value))


def _table(rows: Iterable[tuple[object, ...]], header: Sequence[str] | None) -> str:
    out = [f'<table style="{_TABLE_STYLE}">']
    if header is not None:
        out.append(
            "<thead><tr>"
            + "".join(f'<th style="{_CELL_STYLE}">{_escape(h)}</th>' for h in header)
            + "</tr></thead>"
        )
    out.append("<tbody>")
    out.extend(
        "<tr>" + "".join(f'<td style="{_CELL_STYLE}">{c}</td>' for c in row) + "</tr>"
        for row in rows
    )
    out.append("</tbody></table>")
    return "".join(out)


def render_table(
    rows: Sequence[Mapping[str, object]],
    *,
    columns: Sequence[str] | None = None,
    limit: int = 50,
    caption: str | None = None,
) -> str:
    """Records (dicts sharing keys) as an HTML table, every value escaped.

    Args:
        rows: The records.
        columns: The columns, in order; default the keys of the first record.
        limit: The most rows shown; a note says how many were left out.
        caption: A title above the table.
    """
    names = list(columns) if columns is not None else list(rows[0]) if rows else []
    out = [f"<p><strong>{_escape(caption)}</strong></p>"] if caption else []
    if not rows:
        out.append("<p><em>none</em></p>")
        return "".join(out)
    body = (tuple(_cell(row.get(name)) for name in names) for row in rows[:limit])
    out.append(_table(body, names))
    if len(rows) > limit:
        out.append(f"<p><em>… and {len(rows) - limit} more</em></p>")
    return "".join(out)


def render_html(obj: object) -> str:
    """Any value as HTML: an attrs value as a table of its fields, records as a table.

    The models use it as their `_repr_html_`, so Jupyter shows them as tables. Every
    piece of text is escaped.

    Example:
        >>> import attrs
        >>> @attrs.frozen
        ... class Group:
        ...     id: str
        ...     display_name: str
        >>> "&lt;script&gt;" in render_html(Group("1", "<script>"))
        True
    """
    cls = type(obj)
    if attrs.has(cls):
        rows = (
            (_escape(f.name), _cell(getattr(obj, f.name), f.metadata.get("html_none")))
            for f in _fields(obj)
        )
        return (
            f'<div class="databricks-access"><strong>{_escape(cls.__name__)}</strong>'
            f"{_table(rows, None)}</div>"
        )
    if (
        isinstance(obj, Sequence)
        and not isinstance(obj, (str, bytes))
        and obj
        and all(attrs.has(type(item)) for item in obj)
    ):
        return render_rows(obj)
    if isinstance(obj, Mapping):
        rows = ((_escape(_label(k)), _cell(v)) for k, v in obj.items())
        return f'<div class="databricks-access">{_table(rows, None)}</div>'
    if (
        isinstance(obj, Sequence)
        and not isinstance(obj, (str, bytes))
        and all(isinstance(row, Mapping) for row in obj)
    ):
        table = render_table(cast("Sequence[Mapping[str, object]]", obj))
        return f'<div class="databricks-access">{table}</div>'
    return f"<code>{_escape(_label(obj))}</code>"


def render_rows(
    items: Sequence[object], *, limit: int = 50, caption: str | None = None, more: str = ""
) -> str:
    """Values of attrs classes (models, leases) as one table: a row each, a column a field.

    Args:
        items: The values; the columns are the fields of the first one's class.
        limit: The most rows shown; a note says how many were left out.
        caption: A title above the table (default: the count and the class name).
        more: A note shown under the table (how to see the rest, say).
    """
    if not items:
        empty = f"<p><em>{_escape(caption or 'none')}</em></p>"
        return f'<div class="databricks-access">{empty}</div>'
    first = items[0]
    # The id, then the names (a lease's principal and group), then the rest, in order.
    fields = tuple(
        sorted(
            _fields(first),
            key=lambda f: 0 if f.name == "id" else 1 if f.name.endswith("_name") else 2,
        )
    )
    kind = type(first).__name__
    title = caption or f"{kind}: {len(items)}"
    body = (
        tuple(_cell(getattr(item, f.name, None), f.metadata.get("html_none")) for f in fields)
        for item in items[:limit]
    )
    out = [f"<p><strong>{_escape(title)}</strong></p>", _table(body, [f.name for f in fields])]
    if len(items) > limit:
        out.append(f"<p><em>… and {len(items) - limit} more</em></p>")
    if more:
        out.append(f"<p><em>{_escape(more)}</em></p>")
    return f'<div class="databricks-access">{"".join(out)}</div>'


class HtmlList(list):  # type: ignore[type-arg] # generic through the annotations below
    """A list that draws itself as one table in a notebook (a row per item).

    It is a plain `list` in every other way: listings return it so that
    `tracker.leases()` or `pager.collect()` shows as a table in Jupyter.
    """

    def _repr_html_(self) -> str:
        return render_html(list(self))
