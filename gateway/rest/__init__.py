"""REST API (FastAPI): routers, the auth dependency, the one error handler."""
