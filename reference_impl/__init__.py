"""The reference MyNa Point system: the emulated J-LIS CA and, beside it, the platform."""
