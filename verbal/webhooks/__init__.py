"""Outbound HTTP to apps: build, sign and deliver webhook requests."""
