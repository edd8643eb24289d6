"""Texts kept as a message id and its values, so that each screen can show them in its own language.

A :class:`Text` is an English template (the message id, ``"{record}: the control number (zone 98) is
wrong"``) and the values filling its placeholders; a value may itself be a Text (translated too) or
a plain string or number (shown as it is: a code, a name, the platform's own words).  ``str()`` gives
the English text, for the command line, the logs and the ``.reason`` files; Mybox translates the
template and its Text values at display time.  A :class:`Reason` is a few such lines, stored as JSON
next to its English text (old rows without it stay readable in English).

Every template is registered with :func:`message` where it is defined, so that the translation
catalogues can be checked for completeness (``TEMPLATES``).  This module knows nothing of the
catalogues: the translating function is given by the caller.

Texts that only survive as English (a ``.reason`` file beside a refused toQuery file, a batch run's
reason in the journal) are read back with :func:`recognise`: the registered template whose literal
parts match the whole line, with the values in between.  The values then stay as they were written.
"""
from __future__ import annotations

import json
import logging
import re
import string
from dataclasses import dataclass, field
from typing import Callable, Iterable, Union

log = logging.getLogger(__name__)

TEMPLATES: set[str] = set()
VERBATIM = "{text}"  # a line shown as it is, in every language (the platform's own words, a file name)

Value = Union[str, int, float, "Text"]
Translate = Callable[[str], str]


def message(template: str) -> str:
    """Register ``template`` as a message id to translate, and return it."""
    TEMPLATES.add(template)
    return template


@dataclass(frozen=True)
class Text:
    template: str
    values: dict[str, Value] = field(default_factory=dict)

    def __str__(self) -> str:
        return self.render(lambda template: template)

    def render(self, translate: Translate) -> str:
        """The text in the language of ``translate`` (a template -> translated template function)."""
        template = self.template if self.template == VERBATIM else translate(self.template)
        values = {key: value.render(translate) if isinstance(value, Text) else value
                  for key, value in self.values.items()}
        try:
            return template.format(**values) if values else template
        except (KeyError, IndexError, ValueError):  # a broken translation must not hide the text
            log.warning("translation of %r does not fit its values", self.template)
            return self.template.format(**values) if values else self.template

    def as_data(self) -> list:
        return [self.template, {key: value.as_data() if isinstance(value, Text) else value
                                for key, value in self.values.items()}]

    @classmethod
    def from_data(cls, data: list) -> "Text":
        template, values = data
        return cls(str(template), {str(key): cls.from_data(value) if isinstance(value, list) else value
                                   for key, value in dict(values).items()})


def text(template: str, **values: Value) -> Text:
    return Text(template, values)


def verbatim(line: str) -> Text:
    return Text(VERBATIM, {"text": line})


class Reason(tuple):
    """Lines of text (each a :class:`Text`); ``str()`` is the English text, one line per line."""

    def __new__(cls, lines: Iterable[Text | str]) -> "Reason":
        return super().__new__(cls, tuple(line if isinstance(line, Text) else verbatim(line) for line in lines))

    def __str__(self) -> str:
        return "\n".join(str(line) for line in self)

    def render(self, translate: Translate) -> list[str]:
        return [line.render(translate) for line in self]

    def to_json(self) -> str:
        return json.dumps([line.as_data() for line in self], ensure_ascii=False)

    @classmethod
    def from_json(cls, stored: str | None) -> "Reason | None":
        """The stored lines, or None when there are none or they cannot be read (the English text stays)."""
        if not stored:
            return None
        try:
            return cls(Text.from_data(line) for line in json.loads(stored))
        except (ValueError, TypeError):
            log.warning("a stored reason could not be read; its English text is shown")
            return None


def reason(*lines: Text | str) -> Reason:
    return Reason(lines)


_FORMATTER = string.Formatter()
_compiled: list[tuple[re.Pattern[str], str]] = []
_compiled_from = 0


def _pattern(template: str) -> re.Pattern[str] | None:
    parts, seen = [], set()
    for literal, name, _spec, _conversion in _FORMATTER.parse(template):
        parts.append(re.escape(literal))
        if name is None:
            continue
        if not name.isidentifier():
            return None
        parts.append(f"(?P={name})" if name in seen else f"(?P<{name}>.+?)")
        seen.add(name)
    return re.compile("".join(parts), re.DOTALL)


def _literal(template: str) -> str:
    return "".join(literal for literal, *_ in _FORMATTER.parse(template))


def _patterns() -> list[tuple[re.Pattern[str], str]]:
    """Every registered template with a word of its own as a pattern, the most literal text first (the
    most specific wins); a template of placeholders and punctuation only would match anything."""
    global _compiled, _compiled_from
    if _compiled_from != len(TEMPLATES):
        found = [(pattern, template) for template in TEMPLATES
                 if any(c.isalpha() for c in _literal(template)) and (pattern := _pattern(template)) is not None]
        found.sort(key=lambda item: (-len(_literal(item[1])), item[1]))
        _compiled, _compiled_from = found, len(TEMPLATES)
    return _compiled


def recognise(line: str) -> Text | None:
    """The registered :class:`Text` an English ``line`` was rendered from, or None.  Values that are
    themselves English texts are recognised too."""
    for pattern, template in _patterns():
        found = pattern.fullmatch(line)
        if found is not None:
            values: dict[str, Value] = {}
            for key, value in found.groupdict().items():
                values[key] = (recognise(value) or value) if " " in value else value
            return Text(template, values)
    return None
