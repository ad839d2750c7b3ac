"""The platform suite against a platform at a URL (the sample operator and platform run in the
defect matrix, ``mynahil conformance defects``)."""

from __future__ import annotations

from pathlib import Path

from conformance.cli import run_target
from tests.support import MYNAHIL, free_port, running


def test_a_platform_at_a_url_is_certified_with_its_ca(tmp_path: Path) -> None:
    port = free_port()
    url, ca = f"http://127.0.0.1:{port}", tmp_path / "jlis"
    argv = [*MYNAHIL, "serve", "--db", f"sqlite:///{tmp_path / 'p.db'}", "--port", str(port),
            "--ca", str(ca)]  # fmt: skip
    with running(argv, f"{url}/v1/health"):
        code, results = run_target(f"platform:{url}", tmp_path / "report", platform_ca=ca)
    assert code == 0, results
    assert results["passed"] is True
