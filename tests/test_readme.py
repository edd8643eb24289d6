"""README.md stays true: its commands are what CI runs, its patient table matches the simulator."""
import re

from tests.conftest import ROOT
from unified_messaging.simulator.population import TEST_PATIENTS

README = (ROOT / "README.md").read_text(encoding="utf-8")


def _commands() -> list[str]:
    return re.findall(r"```sh\n(python3 -m venv[^\n]+)\n```", README)


def test_readme_opens_with_the_two_commands():
    serve, test = _commands()[:2]
    assert serve.endswith("unified-messaging serve")
    assert "pytest" in test and "[test]" in test


def test_ci_runs_exactly_the_readme_test_command():
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    test_command = _commands()[1]
    assert test_command in ci.splitlines()


def test_every_test_patient_is_listed():
    for patient in TEST_PATIENTS:
        assert (patient.ssin or patient.registration_number) in README, patient.scenario
