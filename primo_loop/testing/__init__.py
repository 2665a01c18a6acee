"""Test doubles and tiny models shared by tests, benchmarks and docs."""
