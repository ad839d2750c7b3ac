"""OpenSC's command-line tools as a real-world PC/SC client of the card (its JPKI driver).

The demo and the tests both ask OpenSC to list the card's certificates and to sign with the
authentication key after the PIN, through pcscd.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

__all__ = ["OpenSC", "find_opensc"]

_MODULES = (
    "/usr/lib/x86_64-linux-gnu/opensc-pkcs11.so",
    "/usr/lib/aarch64-linux-gnu/opensc-pkcs11.so",
    "/usr/lib/opensc-pkcs11.so",
)


class OpenSC:
    def __init__(self, module: str) -> None:
        self.module = module

    @staticmethod
    def _run(args: list[str]) -> subprocess.CompletedProcess[str]:
        return subprocess.run(args, capture_output=True, text=True, timeout=60, check=False)

    def list_certificates(self) -> subprocess.CompletedProcess[str]:
        """``pkcs15-tool --list-certificates``: every certificate with its label."""
        return self._run(["pkcs15-tool", "--list-certificates"])

    def list_pins(self) -> subprocess.CompletedProcess[str]:
        return self._run(["pkcs15-tool", "--list-pins"])

    def sign(
        self, pin: str, data: Path, signature: Path, key_id: str = "01"
    ) -> subprocess.CompletedProcess[str]:
        """``pkcs11-tool --sign`` with SHA256-RSA-PKCS; key 01 is the authentication key."""
        return self._run(
            ["pkcs11-tool", "--module", self.module, "--sign", "--login", "--pin", pin,
             "--id", key_id, "-m", "SHA256-RSA-PKCS", "-i", str(data), "-o", str(signature)]
        )  # fmt: skip


def find_opensc() -> OpenSC | None:
    """OpenSC if its tools and PKCS#11 module are installed (Debian package ``opensc``)."""
    if shutil.which("pkcs11-tool") is None or shutil.which("pkcs15-tool") is None:
        return None
    module = next((m for m in _MODULES if Path(m).exists()), None)
    return OpenSC(module) if module else None
