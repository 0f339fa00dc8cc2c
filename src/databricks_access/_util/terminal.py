r"""Text that is safe to show on a terminal: the one escaping function for human output.

Names, reasons and messages come from the account, from a directory or from other
people. Shown raw, a display name like ``"\x1b]52;c;...\x07"`` would drive the
operator's terminal (OSC 52 writes the clipboard; CSI sequences clear the screen or move
the cursor), and bidirectional controls would make a line read differently from what it
holds. Every human-readable line the command line prints goes through `terminal_safe`,
which writes each such character as a visible ``\uXXXX`` escape: the text stays
readable, nothing is lost, and the same escape is valid inside a JSON string.

The characters escaped (`UNSAFE`):

- C0 controls U+0000-U+001F (ESC, BEL, CR, ...) and DEL U+007F, except a newline when
  the caller keeps newlines;
- C1 controls U+0080-U+009F (U+009B is a one-character CSI, U+009D an OSC);
- bidirectional controls: U+061C, U+200E, U+200F, U+202A-U+202E, U+2066-U+2069;
- the line and paragraph separators U+2028 and U+2029, which some terminals break on;
- lone surrogates U+D800-U+DFFF, which cannot even be encoded for output.
"""

from __future__ import annotations

import re

__all__ = ["UNSAFE", "first_unsafe", "terminal_safe"]

_BEYOND_C0 = "\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2028\u2029\u2066-\u2069\ud800-\udfff"
UNSAFE = re.compile(f"[\x00-\x1f{_BEYOND_C0}]")
"""One character a terminal may act on, or that changes how a line reads."""
_UNSAFE_BUT_NEWLINE = re.compile(f"[\x00-\x09\x0b-\x1f{_BEYOND_C0}]")
# Multi-line text people write (access details): newlines (LF, CR) and tabs are fine.
_UNSAFE_IN_TEXT = re.compile(f"[\x00-\x08\x0b\x0c\x0e-\x1f{_BEYOND_C0}]")


def _escape(match: re.Match[str]) -> str:
    return f"\\u{ord(match.group()):04x}"


def terminal_safe(text: str, *, keep_newlines: bool = False) -> str:
    r"""`text` with every unsafe character written as a visible `\uXXXX` escape.

    Example:
        >>> terminal_safe("\x1b[2Jops\u202e")
        '\\u001b[2Jops\\u202e'
        >>> terminal_safe("one\ntwo", keep_newlines=True)
        'one\ntwo'
    """
    pattern = _UNSAFE_BUT_NEWLINE if keep_newlines else UNSAFE
    return pattern.sub(_escape, text)


def first_unsafe(text: str, *, multiline: bool = False) -> str | None:
    r"""The first unsafe character of `text` as `U+XXXX`, or None; for refusing input.

    With `multiline`, newlines (LF, CR) and tabs are allowed.

    Example:
        >>> first_unsafe("see the wiki\u202e"), first_unsafe("a\nb", multiline=True)
        ('U+202E', None)
    """
    found = (_UNSAFE_IN_TEXT if multiline else UNSAFE).search(text)
    return None if found is None else f"U+{ord(found.group()):04X}"
