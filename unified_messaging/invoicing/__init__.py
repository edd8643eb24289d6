"""Invoicing: the eFact formats, the folder pipeline and the feedback it collects."""
