"""The demo's platform stories, told over HTTPS with a certificate the demo makes, all come
out as the demo says they should (seed 004: traffic to the platform is encrypted)."""

from __future__ import annotations

from pathlib import Path

from mynahil.demo.platform_stories import platform_stories


def test_every_platform_story_is_as_expected_over_tls(tmp_path: Path) -> None:
    told: list[tuple[str, str, str]] = []
    progress: list[str] = []
    (tmp_path / "cards").mkdir()  # the demo makes it before the stories
    platform_stories(tmp_path, lambda *story: told.append(story), progress.append)
    assert len(told) >= 10
    assert [t for t in told if t[1] != t[2]] == []
    assert any("HTTPS" in line for line in progress)
    refused = [t for t in told if "refuses the certificate" in t[0]]
    assert refused == [
        (refused[0][0], "refused: platform_untrusted", "refused: platform_untrusted")
    ]
    assert (tmp_path / "tls" / "ca.pem").read_text().startswith("-----BEGIN CERTIFICATE-----")
