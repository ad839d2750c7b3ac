"""Emulated registries beside J-LIS: the health-insurance-use registry (マイナ保険証の利用登録)
and the public-fund receiving-account registry (公金受取口座の登録).

Each is a system of its own, keyed by J-LIS's opaque person reference (never the My Number):
it records that a person registered, and on which day. The platform asks it when a round-2
bonus is claimed (SPEC.md: the platform learns a registration from the system that holds it,
not from the holder's word). Over HTTP each has its own routes under ``/v1/registries/{slug}``.
"""

from __future__ import annotations

from .book import (
    Registration,
    RegistrationBook,
    RegistrationFileError,
    RegistryKind,
    open_registries,
)

__all__ = [
    "Registration",
    "RegistrationBook",
    "RegistrationFileError",
    "RegistryKind",
    "open_registries",
]
