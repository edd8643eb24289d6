"""Which MyCareNet platform an address belongs to: production, acceptance or integration.

The platform's hosts are fixed by eHealth: ``services.ehealth.fgov.be`` (production, real
patients and real invoices), ``services-acpt.ehealth.fgov.be`` (acceptance, where integrators
test) and ``services-int.ehealth.fgov.be`` (integration). Every request says whether it is a test
(``CommonInput/Request/IsTest``, an eFact file's type 92 or 12); a test request sent to
production, or a real one to acceptance, is a mistake worth stopping start-up for.  Any other
host (our simulator, a proxy of the integrator's) is "other": no rule can be applied to it, and
start-up says so.
"""
from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Mapping
from urllib.parse import urlsplit


class Environment(enum.Enum):
    PRODUCTION = "production"
    ACCEPTANCE = "acceptance"
    INTEGRATION = "integration"
    OTHER = "other"

    @property
    def is_test_platform(self) -> bool:
        return self in (Environment.ACCEPTANCE, Environment.INTEGRATION)


HOSTS = {
    "services.ehealth.fgov.be": Environment.PRODUCTION,
    "services-acpt.ehealth.fgov.be": Environment.ACCEPTANCE,
    "services-int.ehealth.fgov.be": Environment.INTEGRATION,
    "prod.mycarenet.be": Environment.PRODUCTION,  # GenAsync MemberData (MDA)
    "pilot.mycarenet.be": Environment.ACCEPTANCE,
}

MEMBERDATA_ADDRESSES: dict[Environment, tuple[str, str]] = {
    Environment.PRODUCTION: ("https://services.ehealth.fgov.be/MyCareNet/MemberData/v1",
                             "https://prod.mycarenet.be:9443/mycarenet/bed/GenAsync/memberData"),
    Environment.ACCEPTANCE: ("https://services-acpt.ehealth.fgov.be/MyCareNet/MemberData/v1",
                             "https://pilot.mycarenet.be:9443/mycarenet/bed/GenAsync/memberData"),
}
"""The MemberData sync and async (MDA) addresses of each platform, as public integrations show them."""


def memberdata_addresses(environment: Environment) -> tuple[str, str]:
    """The (sync, async) MemberData addresses of ``environment``; ("", "") when not known."""
    return MEMBERDATA_ADDRESSES.get(environment, ("", ""))


class EnvironmentMismatch(ValueError):
    """The addresses and ``is_test`` do not agree; the message names the keys and what to change."""


def environment_of(url: str) -> Environment:
    return HOSTS.get((urlsplit(url).hostname or "").lower().rstrip("."), Environment.OTHER)


@dataclass(frozen=True)
class PlatformChoice:
    environment: Environment
    hosts: tuple[str, ...]
    is_test: bool

    def announcement(self) -> str:
        """The start-up line that says plainly where requests go."""
        hosts = ", ".join(self.hosts)
        if self.environment is Environment.PRODUCTION:
            return (f"UPSTREAM: the PRODUCTION MyCareNet platform ({hosts}): real patients, real invoices; "
                    "requests are not marked as tests")
        if self.environment.is_test_platform:
            return (f"UPSTREAM: the {self.environment.value.upper()} MyCareNet platform ({hosts}): "
                    "test requests (IsTest = true) only")
        return (f"UPSTREAM: {hosts}, not a MyCareNet address (a proxy or a simulator): production or acceptance "
                f"cannot be told; requests are marked IsTest = {str(self.is_test).lower()}")


def choose_platform(urls: Mapping[str, str], *, is_test: bool, is_test_key: str) -> PlatformChoice:
    """Check that the configured addresses (key -> URL; empty ones ignored) are of one platform and
    that ``is_test`` suits it."""
    found = {key: environment_of(url) for key, url in urls.items() if url}
    known = {env for env in found.values() if env is not Environment.OTHER}
    if len(known) > 1:
        listed = "; ".join(f"{key} is {env.value}" for key, env in found.items())
        raise EnvironmentMismatch(f"The MyCareNet addresses are of different platforms ({listed}): use the "
                                  "addresses of one platform for every service.")
    environment = known.pop() if known else Environment.OTHER
    hosts = tuple(dict.fromkeys(urlsplit(url).hostname or url for url in urls.values() if url))
    first_key = next((key for key, env in found.items() if env is environment), "")
    if environment is Environment.PRODUCTION and is_test:
        raise EnvironmentMismatch(
            f"{is_test_key} = true, but {first_key} is the PRODUCTION platform ({', '.join(hosts)}): test "
            f"requests are refused there. Set {is_test_key} = false to work in production, or use the "
            "acceptance addresses (services-acpt.ehealth.fgov.be) to test.")
    if environment.is_test_platform and not is_test:
        raise EnvironmentMismatch(
            f"{is_test_key} = false, but {first_key} is the {environment.value} platform ({', '.join(hosts)}), "
            f"which takes test requests only. Set {is_test_key} = true there, or use the production addresses "
            "(services.ehealth.fgov.be).")
    return PlatformChoice(environment, hosts, is_test)
