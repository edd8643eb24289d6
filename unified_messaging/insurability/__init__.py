"""Insurability: the core service every interface calls, its folder interface and the legacy batch."""
