"""Domain types shared by the interfaces, the core services and the upstream client: the
insurability question and answer, and the upstream errors callers see.

Imports nothing of the project but the shared base modules, so every layer may import it.
"""
