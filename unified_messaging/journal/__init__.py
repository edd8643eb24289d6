"""The journal: every consultation and file, in SQLite; written by the core, read by the UI."""
