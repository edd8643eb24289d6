"""Mybox in English, Dutch and French, chosen per user (English by default).

Texts are written in English in the templates and the views, wrapped in ``_()``; the English text
is the key of the Dutch and French catalogues in ``translations``.  A missing translation shows
the English text (``tests/test_web_i18n.py`` checks that none is missing).  Amounts and dates are
written the way each language writes them.
"""
from __future__ import annotations

import logging
from unified_messaging.securespace.models import LANGUAGES as USER_LANGUAGES
from unified_messaging.web.translations import CATALOGUES

log = logging.getLogger(__name__)

_NAMES = {"en": "English", "nl": "Nederlands", "fr": "Français"}
LANGUAGES = {code: _NAMES[code] for code in USER_LANGUAGES}
DEFAULT_LANGUAGE = USER_LANGUAGES[0]


class Translator:
    """``_("text", **values)`` in one language; ``values`` fill ``{name}`` placeholders."""

    def __init__(self, language: str) -> None:
        self.language = language if language in LANGUAGES else DEFAULT_LANGUAGE
        self._catalogue = CATALOGUES.get(self.language, {})

    def __call__(self, text: str, **values: object) -> str:
        translated = self._catalogue.get(text, text)
        return translated.format(**values) if values else translated

    def euros(self, cents: int | None) -> str:
        if cents is None:
            return ""
        sign = "-" if cents < 0 else ""
        whole, part = divmod(abs(int(cents)), 100)
        if self.language == "en":
            return f"{sign}€{whole:,}.{part:02d}"
        grouped = f"{whole:,}".replace(",", "\u202f")
        return f"{sign}{grouped},{part:02d} €"

    def number(self, value: int) -> str:
        text = f"{int(value):,}"
        return text if self.language == "en" else text.replace(",", "\u202f")

    def when(self, iso: str | None) -> str:
        """An ISO timestamp as ``2026-11-22 14:05`` (UTC, as the journal keeps it)."""
        return (iso or "")[:16].replace("T", " ")

