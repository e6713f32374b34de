"""The API key of the session's gateway (tests/conftest.py's `gateway` fixture)."""

API_KEY = "test-key-0123456789"
