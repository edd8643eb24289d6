"""Mybox, the web UI."""
