"""Read Java ``.properties`` files (the legacy ``batch.properties``) exactly as the JDK does.

Old batch jobs were configured for a Java program, and operators keep editing those files by
hand, so the gateway must read them exactly like ``java.util.Properties.load``:

* :func:`load_properties` takes bytes and decodes them as ISO-8859-1, like ``load(InputStream)``;
* :func:`loads_properties` takes text, like ``load(Reader)``;
* :func:`read_properties_file` reads a file as bytes (``load(InputStream)``).

Written from the ``Properties.load(Reader)`` Javadoc and checked against the JDK itself (see
``tests/test_properties_reader.py``, which runs real ``java.util.Properties`` on tricky files,
plus random ones). Where the JDK does something the Javadoc does not say, this module does what
the JDK does; those places are marked "JDK:" below.

The rules, in short:

* A *natural line* ends with ``\\n``, ``\\r``, ``\\r\\n`` or the end of the input. Only these end a
  line: not U+0085, U+2028, VT or FF (so never ``str.splitlines``).
* White space is only space, tab and form feed.
* A natural line that ends with an odd number of backslashes continues on the next one: the
  backslash, the line terminator and the white space that starts the next line are dropped. The
  lines joined this way make a *logical line*.
* Blank lines are ignored. A line whose first non-white-space character is ``#`` or ``!`` is a
  comment, which never continues onto the next line even if it ends with a backslash.
* The key runs from the first non-white-space character to the first unescaped ``=``, ``:`` or
  white space. White space after the key is skipped, then one ``=`` or ``:`` if present, then white
  space again; the rest of the logical line is the value (trailing white space is kept).
* In keys and values: ``\\t \\n \\r \\f`` are the usual controls, ``\\uXXXX`` is a UTF-16 code unit
  (exactly one ``u`` and exactly four hex digits, else the file is rejected), and a backslash
  before any other character is dropped (``\\=`` is ``=``, ``\\b`` is ``b``, no octal).
* A later key replaces an earlier one.
"""
from __future__ import annotations

import os
import re
from collections.abc import Iterator

__all__ = ["PropertiesError", "load_properties", "loads_properties", "read_properties_file"]

_WHITESPACE = " \t\f"
_TERMINATORS = "\r\n"
_SEPARATORS = "=:"
_COMMENT_MARKERS = "#!"
_SIMPLE_ESCAPES = {"t": "\t", "n": "\n", "r": "\r", "f": "\f"}
_HEX_DIGITS = frozenset("0123456789abcdefABCDEF")
_SURROGATE = re.compile("[\ud800-\udfff]")


class PropertiesError(ValueError):
    """The properties text cannot be read (the JDK rejects it too).

    ``line`` is the 1-based natural line of the problem; ``source`` names the file when known.
    """

    def __init__(self, message: str, *, line: int, source: str | None = None) -> None:
        self.reason = message
        self.line = line
        self.source = source
        where = f"{source}, line {line}" if source else f"line {line}"
        super().__init__(f"{where}: {message}")


class _LogicalLine:
    """The characters of one logical line, with the natural line each character came from."""

    __slots__ = ("chars", "lines")

    def __init__(self) -> None:
        self.chars: list[str] = []
        self.lines: list[int] = []

    def append(self, char: str, line: int) -> None:
        self.chars.append(char)
        self.lines.append(line)

    def pop(self) -> None:
        self.chars.pop()
        self.lines.pop()

    def __bool__(self) -> bool:
        return bool(self.chars)


def _logical_lines(text: str) -> Iterator[_LogicalLine]:
    """Split ``text`` into logical lines, dropping blank lines, comments and continuations."""
    n = len(text)
    i = 0
    line_no = 1
    current = _LogicalLine()
    skip_white = True  # at the start of a natural line: skip its leading white space
    appended = False  # ...and that natural line continues a logical line
    in_comment = False
    escaped = False  # an odd number of backslashes precedes the current position

    while i < n:
        c = text[i]
        i += 1
        if in_comment:
            if c in _TERMINATORS:
                if c == "\r" and i < n and text[i] == "\n":
                    i += 1
                line_no += 1
                in_comment = False
                skip_white = True
            continue
        if skip_white:
            if c in _WHITESPACE:
                continue
            if not appended and c in _TERMINATORS:  # a blank line between logical lines
                if c == "\r" and i < n and text[i] == "\n":
                    i += 1
                line_no += 1
                continue
            skip_white = False
            appended = False
        if c not in _TERMINATORS:
            # JDK: a comment is recognised whenever the logical line is still empty, so a lone
            # backslash line followed by "# x" makes "# x" a comment, not a key "#".
            if not current and c in _COMMENT_MARKERS:
                in_comment = True
                continue
            current.append(c, line_no)
            escaped = c == "\\" and not escaped
            continue

        # A line terminator.
        terminator_ends_input = i >= n
        if c == "\r" and i < n and text[i] == "\n":
            i += 1
        line_no += 1
        if not current:  # blank, including a blank line right after a continuation
            skip_white = True
            appended = False
            escaped = False
            continue
        if escaped:
            current.pop()  # the backslash that escapes the terminator
            escaped = False
            if terminator_ends_input:
                # JDK: "\<terminator>" as the very last characters of the input ends the logical
                # line as a trailing backslash would, so "\\\n" alone gives the key "" (while
                # "\\\r\n" alone gives nothing: the "\n" is read as part of the next line).
                yield current
                return
            skip_white = True
            appended = True
            continue
        yield current
        current = _LogicalLine()
        skip_white = True
        appended = False

    if in_comment or not current:
        return
    if escaped:
        current.pop()  # a backslash at the end of the input is dropped; the line still counts
    yield current


def _split_key_value(chars: list[str]) -> tuple[int, int]:
    """Return (end of the raw key, start of the raw value) in a logical line."""
    n = len(chars)
    key_end = n
    value_start = n
    has_separator = False
    escaped = False
    for j, c in enumerate(chars):
        if not escaped and (c in _SEPARATORS or c in _WHITESPACE):
            key_end = j
            value_start = j + 1
            has_separator = c in _SEPARATORS
            break
        escaped = c == "\\" and not escaped
    while value_start < n and chars[value_start] in _WHITESPACE:
        value_start += 1
    if not has_separator and value_start < n and chars[value_start] in _SEPARATORS:
        value_start += 1
        while value_start < n and chars[value_start] in _WHITESPACE:
            value_start += 1
    return key_end, value_start


def _show(chars: list[str]) -> str:
    """Characters as they could be typed in the file, control characters made visible."""
    return "".join(c if c.isprintable() else f"\\u{ord(c):04X}" for c in chars)


def _unescape(
    logical: _LogicalLine, start: int, end: int, what: str, source: str | None
) -> str:
    chars = logical.chars
    out: list[str] = []
    j = start
    while j < end:
        c = chars[j]
        j += 1
        if c != "\\":
            out.append(c)
            continue
        if j >= end:  # cannot happen (trailing odd backslashes are removed); drop it like the JDK
            break
        c = chars[j]
        j += 1
        if c == "u":
            digits = chars[j : min(j + 4, end)]
            if len(digits) < 4 or not all(d in _HEX_DIGITS for d in digits):
                found = "\\u" + _show(digits)
                ending = " (the line ends there)" if len(digits) < 4 else ""
                raise PropertiesError(
                    f'malformed Unicode escape "{found}"{ending} in {what}: "\\u" must be followed '
                    "by exactly four hexadecimal digits (0-9, A-F), e.g. \\u00E9 for \u00e9. "
                    "To write a backslash itself, double it (\\\\). "
                    "Java refuses this file too ('Malformed \\uxxxx encoding.').",
                    line=logical.lines[j - 2],
                    source=source,
                )
            out.append(chr(int("".join(digits), 16)))
            j += 4
        else:
            out.append(_SIMPLE_ESCAPES.get(c, c))
    value = "".join(out)
    if _SURROGATE.search(value):
        # Java strings are UTF-16: "\uD83D\uDE00" is one character. Join such pairs into one
        # code point, and keep lone surrogates as they are, as Java does.
        value = value.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "surrogatepass")
    return value


def loads_properties(text: str, *, source: str | None = None) -> dict[str, str]:
    """Parse properties text like ``java.util.Properties.load(Reader)``.

    Keys keep the order of their first appearance; a repeated key takes its last value.
    ``source`` (e.g. a file name) is only used in error messages.

    :raises PropertiesError: on a malformed ``\\uXXXX`` escape, the only thing the JDK refuses.
    """
    if not isinstance(text, str):
        raise TypeError(
            f"loads_properties() takes str, not {type(text).__name__}; "
            "use load_properties() for bytes"
        )
    result: dict[str, str] = {}
    for logical in _logical_lines(text):
        key_end, value_start = _split_key_value(logical.chars)
        key = _unescape(logical, 0, key_end, "a key", source)
        what = f'the value of "{_show(list(key))}"'
        result[key] = _unescape(logical, value_start, len(logical.chars), what, source)
    return result


def load_properties(data: bytes, *, source: str | None = None) -> dict[str, str]:
    """Parse properties bytes like ``java.util.Properties.load(InputStream)``: ISO-8859-1.

    Every byte is one character (0xE9 is "é"); other characters must be written as ``\\uXXXX``.
    A UTF-8 file therefore reads as mojibake, exactly as it does in Java.
    """
    if isinstance(data, str):
        raise TypeError("load_properties() takes bytes; use loads_properties() for str")
    return loads_properties(bytes(data).decode("iso-8859-1"), source=source)


def read_properties_file(path: str | os.PathLike[str]) -> dict[str, str]:
    """Read a ``.properties`` file like ``Properties.load(new FileInputStream(path))``.

    :raises OSError: if the file cannot be read.
    :raises PropertiesError: if the JDK would refuse it; the message names the file and line.
    """
    with open(path, "rb") as handle:
        data = handle.read()
    return load_properties(data, source=os.fspath(path))
