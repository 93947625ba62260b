"""Carriers: the networks messages leave by and arrive from."""
