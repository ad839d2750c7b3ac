"""The store's tests use the database fixtures of tests/reference_impl/conftest.py."""
