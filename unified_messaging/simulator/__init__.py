"""The built-in MyCareNet simulator: the embedded default upstream for demos and tests."""
