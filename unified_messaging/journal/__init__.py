"""The journal: every consultation and file, in SQLite; written by the core, read by the UI."""
from unified_messaging.journal.store import Consultation, Journal

__all__ = ["Consultation", "Journal"]
