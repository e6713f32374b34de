"""Test helpers: real processes on free loopback ports, real Redis/PostgreSQL."""
