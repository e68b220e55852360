"""Every bad input of benchmarks/bad_inputs.py gives a clear error or a reported policy."""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import bad_inputs  # noqa: E402


@pytest.fixture(scope="module")
def rows(data_dir):
    if not (data_dir / "camels_us").is_dir() or not (data_dir / "camels_caravan").is_dir():
        pytest.skip("the shared CAMELS-US and Caravan subsets are needed")
    return bad_inputs.run_cases(data_dir)


def test_no_bad_input_is_silent(rows):
    assert len(rows) >= 55
    silent = [r for r in rows if r[2] == "SILENT"]
    assert not silent, silent


def test_command_line_errors_are_one_line_naming_the_problem(rows):
    for name, outcome, verdict in rows:
        if verdict.startswith("error"):
            assert outcome and "\n" not in outcome, (name, outcome)
            assert "Traceback" not in outcome and not outcome.strip().isdigit(), (name, outcome)


@pytest.mark.parametrize("name, words", [
    ("-999 in a Caravan precipitation column", "precipitation"),
    ("a Caravan CSV cut in the middle of a line", "truncated"),
    ("temperatures in Kelvin in a Caravan file", "Kelvin"),
    ("periods.train without an end (1999-10-01)", "both ends"),
    ("--out a non-empty folder difhydro did not create", "nothing was changed"),
    ("overlapping train and test periods", "overlaps"),
    ("a model that fails during training", "exit 1"),
    ("data.pet: data on Caravan (ERA5-Land's negative PET on condensation days)", "pet: {clip: [0, null]}"),
])
def test_outcomes_name_the_problem(rows, name, words):
    outcome = dict((r[0], r[1]) for r in rows)[name]
    assert words in outcome, outcome
