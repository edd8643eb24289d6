"""Dutch and French texts of Mybox, keyed by the English text (see ``i18n``)."""
from __future__ import annotations

CATALOGUES: dict[str, dict[str, str]] = {
    "nl": {},
    "fr": {},
}
