"""unified-messaging: the on-premise gateway between legacy MyCareNet callers and MyCareNet SSO."""

__version__ = "0.1.0"
