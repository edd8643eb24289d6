"""MemberData configuration (#12 point 1): the service choice, the per-quality choice, the addresses."""
import pytest

from unified_messaging.config import Config, ConfigError, config_from_dict
from unified_messaging.mycarenet.environments import Environment, environment_of, memberdata_addresses


def test_memberdata_defaults_keep_genericinsurability():
    upstream = Config().upstream
    assert upstream.insurability_service == "genins"
    assert upstream.memberdata_qualities == ()
    assert upstream.memberdata_url == "" and upstream.memberdata_async_url == ""


def test_memberdata_choice_and_qualities_are_read():
    config = config_from_dict({"upstream": {"insurability_service": "memberdata",
                                            "memberdata_qualities": ["nurse", "groupofnurses"],
                                            "memberdata_url": "https://md.example.be/MemberData/v1"}})
    assert config.upstream.insurability_service == "memberdata"
    assert config.upstream.memberdata_qualities == ("nurse", "groupofnurses")
    assert config.upstream.memberdata_url == "https://md.example.be/MemberData/v1"


@pytest.mark.parametrize("raw, words", [
    ({"insurability_service": "mda"}, ["[upstream] insurability_service", "'mda'", "'genins', 'memberdata'"]),
    ({"memberdata_qualities": ["Nurse"]}, ["[upstream] memberdata_qualities", "lower case"]),
    ({"memberdata_qualities": "nurse"}, ["[upstream] memberdata_qualities", "list of strings"]),
    ({"memberdata_url": "services.ehealth.fgov.be"}, ["[upstream] memberdata_url", "http://"]),
])
def test_memberdata_wrong_values_name_the_key(raw, words):
    with pytest.raises(ConfigError) as caught:
        config_from_dict({"upstream": raw})
    for word in words:
        assert word in str(caught.value)


def test_memberdata_addresses_per_platform_are_of_that_platform():
    for environment in (Environment.PRODUCTION, Environment.ACCEPTANCE):
        sync, asynchronous = memberdata_addresses(environment)
        assert sync.endswith("/MyCareNet/MemberData/v1") and asynchronous.endswith("/GenAsync/memberData")
        assert environment_of(sync) is environment and environment_of(asynchronous) is environment
    assert memberdata_addresses(Environment.OTHER) == ("", "")


def test_memberdata_remote_address_defaults_to_the_platforms():
    from unified_messaging.upstream_choice import memberdata_url

    chosen = config_from_dict({"upstream": {"memberdata_qualities": ["nurse"]}})
    assert memberdata_url(chosen, Environment.ACCEPTANCE) == "https://services-acpt.ehealth.fgov.be/MyCareNet/MemberData/v1"
    assert memberdata_url(Config(), Environment.ACCEPTANCE) == ""
    with pytest.raises(ConfigError, match="memberdata_url"):
        memberdata_url(chosen, Environment.OTHER)


@pytest.mark.parametrize("upstream, words", [
    ({}, "insurability over GenericInsurability"),
    ({"insurability_service": "memberdata"}, "insurability over MemberData for every consultation"),
    ({"memberdata_qualities": ["nurse", "groupofnurses"]},
     "insurability over MemberData for nurse, groupofnurses, over GenericInsurability otherwise"),
])
def test_memberdata_choice_is_said_in_words_for_the_start_up_log(upstream, words):
    from unified_messaging.upstream_choice import describe_choice

    assert describe_choice(config_from_dict({"upstream": upstream})) == words
