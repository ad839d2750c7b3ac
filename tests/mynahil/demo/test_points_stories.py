"""The demo's point-system stories all come out as the demo says they should."""

from __future__ import annotations

from pathlib import Path

from mynahil.demo.points_stories import points_stories


def test_every_point_story_is_as_expected(tmp_path: Path) -> None:
    told: list[tuple[str, str, str]] = []
    csv = points_stories(tmp_path, lambda *story: told.append(story), lambda _m: None)
    assert len(told) >= 10
    unexpected = [t for t in told if t[1] != t[2]]
    assert unexpected == []
    assert any(t[0].startswith("A revoked ID does not reset the cap") for t in told)
    assert csv.read_text().startswith("entry_id,")
