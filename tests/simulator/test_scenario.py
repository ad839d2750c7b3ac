"""Scenario validation: clear errors naming the field; any mutation loads or is refused."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mynahil.simulator import Scenario, ScenarioError, load_scenario, set_field
from mynahil.simulator.scenario import parse_scenario
from tests.support import examples

from .conftest import SCENARIOS


def mutated(scenario: Scenario, path: list[str | int], value: Any) -> dict[str, Any]:
    data = copy.deepcopy(dict(scenario.source))
    node: Any = data
    for part in path[:-1]:
        node = node[part]
    node[path[-1]] = value
    return data


def test_round1_has_every_prefecture_and_municipality(round1: Scenario) -> None:
    assert len(round1.population.prefectures) == 47
    assert sum(p.municipalities for p in round1.population.prefectures) == 1741
    assert 120_000_000 < round1.population.total < 130_000_000


def test_share_out_of_range_names_the_field(round1: Scenario) -> None:
    data = mutated(round1, ["channels", "iphone", "share"], 1.4)
    with pytest.raises(
        ScenarioError, match=r"^channels\.iphone\.share: must be between 0 and 1, got 1\.4$"
    ):
        parse_scenario(data)


def test_unknown_keys_are_errors(round1: Scenario) -> None:
    data = mutated(round1, ["platform", "sevrers"], 3)
    with pytest.raises(ScenarioError, match=r"^platform\.sevrers: unknown key"):
        parse_scenario(data)
    data = mutated(round1, ["channels", "fax"], {})
    with pytest.raises(ScenarioError, match=r"^channels\.fax: unknown channel"):
        parse_scenario(data)


def test_shares_must_add_up(round1: Scenario) -> None:
    data = mutated(round1, ["channels", "iphone", "share"], 0.5)
    with pytest.raises(ScenarioError, match="shares must add up to 1"):
        parse_scenario(data)


def test_missing_file_and_bad_toml(tmp_path: Path) -> None:
    with pytest.raises(ScenarioError, match="no such scenario file"):
        load_scenario(tmp_path / "nope.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("name = ")
    with pytest.raises(ScenarioError, match="not valid TOML"):
        load_scenario(bad)


def test_extends_overrides_only_what_it_names(round1: Scenario, launch_week: Scenario) -> None:
    assert launch_week.population == round1.population
    assert launch_week.run.days == 7
    assert launch_week.platform.service_median_ms != round1.platform.service_median_ms


def test_set_field_by_alias_and_by_path(round1: Scenario) -> None:
    assert set_field(round1, "servers", 12).platform.servers == 12
    staffed = set_field(round1, "window_staff", 5)
    assert staffed.channel("municipal_window").station.servers_per_spot == 5  # type: ignore[union-attr]
    with pytest.raises(ScenarioError, match="no such field"):
        set_field(round1, "platform.nothing.here", 1)
    with pytest.raises(ScenarioError, match=r"platform\.servers"):
        set_field(round1, "servers", 0)


def _leaves(node: Any, path: list[str | int]) -> list[list[str | int]]:
    if isinstance(node, dict):
        return [p for k, v in node.items() for p in _leaves(v, [*path, k])]
    if isinstance(node, list):
        return [p for i, v in enumerate(node) for p in _leaves(v, [*path, i])]
    return [path]


values = st.one_of(
    st.integers(-10, 10**8), st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=6),
    st.booleans(), st.dates(), st.lists(st.integers(), max_size=3), st.none(),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
)  # fmt: skip


@settings(
    max_examples=examples(150),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(data=st.data())
def test_any_mutation_loads_or_is_refused_clearly(round1: Scenario, data: st.DataObject) -> None:
    source = dict(round1.source)
    leaves = _leaves(source, [])
    path = data.draw(st.sampled_from(leaves))
    value = data.draw(values)
    scenario = mutated(round1, path, value) if value is not None else _deleted(round1, path)
    try:
        parse_scenario(scenario)
    except ScenarioError as exc:
        message = str(exc)
    else:
        return
    assert message  # a message naming what is wrong


def _deleted(scenario: Scenario, path: list[str | int]) -> dict[str, Any]:
    data = copy.deepcopy(dict(scenario.source))
    node: Any = data
    for part in path[:-1]:
        node = node[part]
    del node[path[-1]]
    return data


def test_bundled_scenarios_load() -> None:
    for path in SCENARIOS.glob("*.toml"):
        assert load_scenario(path).name


def test_procedure_spots_as_the_seeds_have_them(round1: Scenario) -> None:
    """About 90,000 places (seed 000); Seven Bank ATMs only from September 2020 (seed 002)."""
    from datetime import date

    total = sum(s.count for s in round1.procedure_spots)
    assert 85_000 <= total <= 95_000
    assert all(s.source for s in round1.procedure_spots)
    atms = next(s for s in round1.procedure_spots if "Seven Bank" in s.kind)
    assert atms.available_from == date(2020, 9, 1)
    kiosk = round1.channel("kiosk").station
    assert kiosk is not None
    assert kiosk.spots_on(date(2020, 8, 31)) + atms.count == kiosk.spots_on(date(2020, 9, 1))
    assert any("Lawson" in s.kind and "new model" in s.kind for s in round1.procedure_spots)


def test_a_kiosk_what_if_replaces_the_listed_count_and_keeps_the_atms(round1: Scenario) -> None:
    from datetime import date

    variant = set_field(round1, "kiosks", 100)
    kiosk = variant.channel("kiosk").station
    assert kiosk is not None
    assert kiosk.spots_on(date(2020, 7, 1)) == 100
    assert kiosk.spots_on(date(2020, 9, 1)) == 100 + 23_000


def test_spots_missing_or_miscounted_are_errors(round1: Scenario) -> None:
    data = copy.deepcopy(dict(round1.source))
    data["procedure_spots"] = [s for s in data["procedure_spots"] if s["channel"] != "kiosk"]
    with pytest.raises(ScenarioError, match=r"channels.kiosk.spots: must be >= 1"):
        parse_scenario(data)
    data = copy.deepcopy(dict(round1.source))
    data["procedure_spots"][-1]["count"] = 5
    with pytest.raises(ScenarioError, match=r"procedure_spots\[7\].count: one window"):
        parse_scenario(data)


def test_the_round_dates_come_from_the_campaign_files(round1: Scenario) -> None:
    """scenarios/campaigns/ is the one home of a round's dates (issue 16.5)."""
    from datetime import date

    from mynahil.reference_impl.points import load_scheme

    rules = load_scheme().campaigns
    campaign = round1.campaign
    assert campaign.campaign_id == "round1"
    assert campaign.signup_opens == rules["round1"].opens == date(2020, 7, 1)
    assert campaign.point_period_starts == rules["round1"].spend.starts == date(2020, 9, 1)
    assert campaign.applications_close == rules["round1"].closes == date(2021, 12, 31)
    assert campaign.cards_applied_by == rules["round1"].spend.extensions[-1].card_applied_by
    round2 = load_scenario(SCENARIOS / "round2.toml").campaign
    # Round 2's spend part opened in January; the model's wave starts with its bonuses.
    assert round2.signup_opens == rules["round2"].bonuses[0].opens == date(2022, 6, 30)
    assert round2.point_period_starts == date(2022, 6, 30)
    assert round2.applications_close == rules["round2"].closes == date(2023, 9, 30)
    assert round2.cards_applied_by == rules["round2"].spend.card_applied_by == date(2023, 2, 28)


def test_a_scenario_cannot_restate_the_dates_or_name_an_unknown_campaign(
    round1: Scenario,
) -> None:
    data = mutated(round1, ["campaign", "signup_opens"], "2020-07-01")
    with pytest.raises(ScenarioError, match=r"^campaign\.signup_opens: unknown key \(expected"):
        parse_scenario(data)
    data = mutated(round1, ["campaign", "id"], "round9")
    with pytest.raises(ScenarioError, match=r"^campaign\.id: no campaign 'round9'.*round1"):
        parse_scenario(data)
