"""What each role may see and change in Mybox.

* administrator: everything, including users, licence, folders, secure space and the check;
* administrative: the traffic (invoicing, consultations, batch runs), certificates (seeing them;
  granting access when responsible for one) and mandates;
* clinical: the dashboard and the insurability consultations.

The secure space's own rules still apply on top: only a certificate's responsible person may
change its access list, whatever their role.
"""
from __future__ import annotations

import logging
from enum import Enum

from unified_messaging.securespace.models import Role, User

log = logging.getLogger(__name__)

_ALL = frozenset(Role)
_OFFICE = frozenset({Role.ADMINISTRATOR, Role.ADMINISTRATIVE})
_ADMIN = frozenset({Role.ADMINISTRATOR})


class Permission(str, Enum):
    DASHBOARD = "dashboard"
    INVOICING = "invoicing"
    INSURABILITY = "insurability"
    BATCH = "batch"
    CERTIFICATES = "certificates"
    MANAGE_CERTIFICATES = "manage-certificates"
    MANDATES = "mandates"
    ADMINISTER = "administer"
    ACCOUNT = "account"


ALLOWED: dict[Permission, frozenset[Role]] = {
    Permission.DASHBOARD: _ALL,
    Permission.INVOICING: _OFFICE,
    Permission.INSURABILITY: _ALL,
    Permission.BATCH: _OFFICE,
    Permission.CERTIFICATES: _OFFICE,
    Permission.MANAGE_CERTIFICATES: _ADMIN,
    Permission.MANDATES: _OFFICE,
    Permission.ADMINISTER: _ADMIN,
    Permission.ACCOUNT: _ALL,
}


def allowed(user: User | None, permission: Permission) -> bool:
    return user is not None and bool(user.roles & ALLOWED[permission])
