"""The journal: every consultation and file, in the database; written by the core, read by the UI."""
from unified_messaging.journal.store import BatchFileRun, Consultation, Journal

__all__ = ["BatchFileRun", "Consultation", "Journal"]
