"""Mybox's pages, one module per part of the menu; importing this package registers their routes."""
from unified_messaging.web.views import account, admin, traffic

ROUTE_MODULES = (account, admin, traffic)
