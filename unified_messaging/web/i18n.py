"""Mybox in English, Dutch and French, chosen per user (English by default).

Texts are written in English in the templates and the views, wrapped in ``_()`` (templates may also
use jinja2's ``{% trans %}``); the English text is the msgid of the Dutch and French gettext catalogues,
``locale/<language>/LC_MESSAGES/mybox.po``, which translators edit with their usual tools.  A missing
translation shows the English text (``tests/test_web_i18n.py`` fails when one is missing).  Amounts
are written the way each language writes them; times in Belgian time (Europe/Brussels).
"""
from __future__ import annotations

import importlib
import logging
from datetime import datetime, timezone, tzinfo
from pathlib import Path
from zoneinfo import ZoneInfo

from babel.messages.pofile import read_po

from unified_messaging.texts import Reason, Text, recognise
from unified_messaging.securespace.models import LANGUAGES as USER_LANGUAGES

log = logging.getLogger(__name__)

LOCALE = Path(__file__).resolve().parent / "locale"
DOMAIN = "mybox"
BRUSSELS = ZoneInfo("Europe/Brussels")


def load_catalogue(language: str, folder: Path = LOCALE) -> dict[str, str]:
    """The translated texts of one language's ``.po`` file, by English text (untranslated ones left out)."""
    path = folder / language / "LC_MESSAGES" / f"{DOMAIN}.po"
    if not path.exists():
        return {}
    with path.open("rb") as stream:
        catalogue = read_po(stream, locale=language, domain=DOMAIN)
    return {m.id: m.string for m in catalogue if m.id and isinstance(m.id, str) and m.string and not m.fuzzy}

_NAMES = {"en": "English", "nl": "Nederlands", "fr": "Français"}
LANGUAGES = {code: _NAMES[code] for code in USER_LANGUAGES}
DEFAULT_LANGUAGE = USER_LANGUAGES[0]
CATALOGUES: dict[str, dict[str, str]] = {code: load_catalogue(code) for code in LANGUAGES if code != DEFAULT_LANGUAGE}

# The modules that register texts built outside the web layer (``texts.message``): eFact explanations
# and validator findings, invoicing refusals, why a toQuery or batch file was refused, the platform's
# refusals and the advice for them.
TEXT_MODULES = ("efact.explain", "efact.validator", "invoicing.reasons", "insurability.folder",
                "insurability.batch_input", "folders.watcher", "mycarenet.faults")


def load_texts() -> None:
    """Import the modules of ``TEXT_MODULES`` (a no-op once done), so that English texts written by them
    are recognised and translated even in a process that does not run them (a front worker)."""
    for module in TEXT_MODULES:
        importlib.import_module("unified_messaging." + module)


class Translator:
    """``_("text", **values)`` in one language; ``values`` fill ``{name}`` placeholders."""

    def __init__(self, language: str, zone: tzinfo = BRUSSELS) -> None:
        self.language = language if language in LANGUAGES else DEFAULT_LANGUAGE
        self._catalogue = CATALOGUES.get(self.language, {})
        self.zone = zone

    def __call__(self, text: str, **values: object) -> str:
        translated = self._catalogue.get(text, text)
        return translated.format(**values) if values else translated

    def text(self, item: Text | str) -> str:
        """A text built elsewhere as a message id and values (an eFact explanation, a refusal reason), in
        this language; a plain string is shown as it is."""
        if isinstance(item, Text):
            return item.render(lambda template: self._catalogue.get(template, template))
        return item

    def reason(self, stored: str | None, english: str | None) -> list[str]:
        """The lines of a reason kept in the journal: its message ids (``stored``, JSON) translated, or its
        English text when it was stored before reasons had message ids."""
        lines = Reason.from_json(stored)
        if lines is not None:
            return [self.text(line) for line in lines]
        return self.english(english)

    def english(self, written: str | None) -> list[str]:
        """The lines of an English text that only survives as text (a ``.reason`` file, an old journal
        row), each line translated when it is a registered text, else shown as it is."""
        if not written:
            return []
        if self.language == DEFAULT_LANGUAGE:
            return written.splitlines()
        load_texts()
        return [self.text(recognise(line) or line) for line in written.splitlines()]

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

    def ngettext(self, singular: str, plural: str, n: int, **values: object) -> str:
        """For jinja2's ``{% trans count=n %}``: the plural text from 2 on (the catalogues hold both forms
        as separate msgids)."""
        return self(singular if n == 1 else plural, **values)

    def when(self, iso: str | None) -> str:
        """A journal timestamp (ISO, UTC) as ``2026-11-22 15:05`` in Belgian time; a date stays a date."""
        if not iso:
            return ""
        try:
            moment = datetime.fromisoformat(iso)
        except ValueError:
            return iso[:16].replace("T", " ")
        if len(iso) <= 10:
            return iso
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=timezone.utc)
        return moment.astimezone(self.zone).strftime("%Y-%m-%d %H:%M")

