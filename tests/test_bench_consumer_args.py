"""``bench/run consumer --scenarios``: each scenario named once runs once per repeat, (a)
first when it is not named (every ratio is to it). A name given twice used to be run twice
per repeat and crash the report at the very end (its runs no longer paired with (a)'s)."""

from bench.consumer import wanted_scenarios


def test_a_scenario_named_twice_runs_once_and_a_comes_first_when_not_named():
    assert wanted_scenarios("b,c,b") == ["a", "b", "c"]
    assert wanted_scenarios("a,b,a,,a") == ["a", "b"]
    assert wanted_scenarios("d,a") == ["d", "a"]
