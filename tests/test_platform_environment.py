"""#15 point 4: start-up says which MyCareNet platform it talks to, and refuses test requests to
production (and real ones to acceptance), naming the key."""
from __future__ import annotations

import logging

import pytest

from tests.conftest import make_config
from tests.support import LICENCE
from unified_messaging.config import ConfigError
from unified_messaging.gateway import Gateway
from unified_messaging.mycarenet.environments import (
    Environment,
    EnvironmentMismatch,
    choose_platform,
    environment_of,
)

PRODUCTION = "https://services.ehealth.fgov.be"
ACCEPTANCE = "https://services-acpt.ehealth.fgov.be"
STS = "/IAM/Saml11TokenService/v1"
GENINS = "/GenericInsurability/v1"
KEY = "[upstream] is_test"


def urls(sts_base: str, genins_base: str) -> dict[str, str]:
    return {"[upstream] sts_url": sts_base + STS, "[upstream] genericinsurability_url": genins_base + GENINS,
            "[upstream] genasync_url": ""}


@pytest.mark.parametrize("url, environment", [
    (PRODUCTION + STS, Environment.PRODUCTION), ("https://SERVICES.ehealth.fgov.be./x", Environment.PRODUCTION),
    (ACCEPTANCE + GENINS, Environment.ACCEPTANCE), ("https://services-int.ehealth.fgov.be/x", Environment.INTEGRATION),
    ("http://127.0.0.1:8090/x", Environment.OTHER), ("https://proxy.lab.example/ehealth", Environment.OTHER),
])
def test_the_platform_of_an_address(url, environment):
    assert environment_of(url) is environment


def test_production_takes_real_requests_and_acceptance_test_ones():
    production = choose_platform(urls(PRODUCTION, PRODUCTION), is_test=False, is_test_key=KEY)
    assert production.environment is Environment.PRODUCTION
    assert "the PRODUCTION MyCareNet platform (services.ehealth.fgov.be): real patients" in production.announcement()
    acceptance = choose_platform(urls(ACCEPTANCE, ACCEPTANCE), is_test=True, is_test_key=KEY)
    assert "the ACCEPTANCE MyCareNet platform (services-acpt.ehealth.fgov.be): test requests" in acceptance.announcement()
    other = choose_platform(urls("http://127.0.0.1:9", "http://127.0.0.1:9"), is_test=False, is_test_key=KEY)
    assert "not a MyCareNet address" in other.announcement() and "IsTest = false" in other.announcement()


@pytest.mark.parametrize("bases, is_test, words", [
    ((PRODUCTION, PRODUCTION), True, ["[upstream] is_test = true", "[upstream] sts_url is the PRODUCTION platform",
                                      "Set [upstream] is_test = false"]),
    ((ACCEPTANCE, ACCEPTANCE), False, ["[upstream] is_test = false", "acceptance platform", "takes test requests only"]),
    ((PRODUCTION, ACCEPTANCE), False, ["different platforms", "[upstream] sts_url is production",
                                       "[upstream] genericinsurability_url is acceptance"]),
])
def test_a_mismatch_is_refused_naming_the_key(bases, is_test, words):
    with pytest.raises(EnvironmentMismatch) as refused:
        choose_platform(urls(*bases), is_test=is_test, is_test_key=KEY)
    assert all(word in str(refused.value) for word in words), str(refused.value)


def _remote(tmp_path, pki, base: str, is_test: bool):
    return make_config(
        tmp_path,
        upstream={"mode": "remote", "sts_url": base + STS, "genericinsurability_url": base + GENINS,
                  "is_test": is_test, "platform_ca": str(pki.ca_certificate_path)},
        invoicing={"enabled": False}, folders={"insurability": False},
        identity={"keystore": str(pki.keystores["lab"].path), "keystore_password": pki.password},
        licence={"username": LICENCE[0], "password": LICENCE[1]},
    )


def test_the_gateway_refuses_test_requests_to_production_at_start_up(tmp_path, pki):
    gateway = Gateway(_remote(tmp_path, pki, PRODUCTION, True))
    with pytest.raises(ConfigError, match=r"\[upstream\] is_test = true, but \[upstream\] sts_url is the PRODUCTION"):
        gateway.open_service()
    gateway.stop()


def test_the_gateway_says_loudly_which_platform_it_talks_to(tmp_path, pki, caplog):
    gateway = Gateway(_remote(tmp_path, pki, ACCEPTANCE, True))
    with caplog.at_level(logging.WARNING, logger="unified_messaging.upstream"):
        gateway.open_service()  # no call goes out before the first request: nothing reaches the network here
    gateway.stop()
    assert "UPSTREAM: the ACCEPTANCE MyCareNet platform (services-acpt.ehealth.fgov.be)" in caplog.text
