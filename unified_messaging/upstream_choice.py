"""Which upstream services the configuration asks for: MemberData for some or all consultations,
and its address (the configured one, else the platform's)."""
from __future__ import annotations

from unified_messaging.config import Config, ConfigError
from unified_messaging.mycarenet.environments import Environment, memberdata_addresses


def uses_memberdata(config: Config) -> bool:
    """Whether some consultations go over MemberData (for every quality, or for some)."""
    return config.upstream.insurability_service == "memberdata" or bool(config.upstream.memberdata_qualities)


def memberdata_url(config: Config, environment: Environment) -> str:
    """``[upstream] memberdata_url``, else the MemberData address of the configured platform."""
    if not uses_memberdata(config):
        return config.upstream.memberdata_url
    url = config.upstream.memberdata_url or memberdata_addresses(environment)[0]
    if not url:
        raise ConfigError('[upstream] memberdata_url = "" is not valid when consultations go over MemberData '
                          "([upstream] insurability_service or memberdata_qualities) and the other addresses are "
                          "not MyCareNet's: expected the MemberData v1 address.")
    return url


def describe_choice(config: Config) -> str:
    """Which service answers the consultations, in words (the start-up log says it)."""
    if config.upstream.insurability_service == "memberdata":
        return "insurability over MemberData for every consultation"
    if config.upstream.memberdata_qualities:
        return (f"insurability over MemberData for {', '.join(config.upstream.memberdata_qualities)}, "
                "over GenericInsurability otherwise")
    return "insurability over GenericInsurability"


def memberdata_async_url(config: Config, environment: Environment) -> str:
    """``[upstream] memberdata_async_url``, else the GenAsync memberData address of the configured
    platform ("" when neither is known: the batch then keeps the sync MemberData)."""
    if not uses_memberdata(config):
        return config.upstream.memberdata_async_url
    return config.upstream.memberdata_async_url or memberdata_addresses(environment)[1]
