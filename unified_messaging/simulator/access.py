"""Who may use the simulated GenAsync mailbox, as the platform decides it.

A call made for the caller's own NIHII (``Origin/CareProvider``) needs a token that certifies a
quality allowed to invoice (the qualities table's ``invoicing``), else the fault ``SOA-01002``
(the platform catalogue's "the user has no access").  A call for another care provider is
accepted: the platform's mandate register decides those, and the simulator keeps none.
"""
from __future__ import annotations

from unified_messaging.mycarenet import qualities
from unified_messaging.simulator.security import CallerInfo, SimulatedFault

NO_ACCESS = "SOA-01002"  # the platform catalogue's "the user has no access"
INVOICING_SERVICE = "invoicing"  # the qualities table's name for eFact through GenAsync


def certified_qualities(caller: CallerInfo) -> frozenset[str]:
    """The qualities the caller's token certifies (a certified attribute of the table that is "true")."""
    table = qualities.active()
    return frozenset(name for name in table.names for rule in table.require(name).claims
                     if not rule.identifies and rule.value == "true"
                     and caller.attributes.get(rule.uri) == ("true",))


def refuse_without_access(caller: CallerInfo | None, care_provider: str) -> None:
    """A call in the caller's own name needs a quality that may invoice (see the module docstring)."""
    if caller is None or caller.identity is None:
        return  # a mailbox served without the platform's security checks (unit tests)
    own = caller.identity.nihii
    if not own or care_provider[:8] != own[:8]:
        return
    certified = certified_qualities(caller)
    if certified & qualities.active().allowed(INVOICING_SERVICE):
        return
    shown = ", ".join(sorted(certified)) or "none"
    raise SimulatedFault(NO_ACCESS, f"The user has no access: the token certifies no quality that may use eFact "
                                    f"invoicing (certified: {shown}).")
