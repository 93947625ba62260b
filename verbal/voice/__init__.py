"""Calls: the voice channel of the engine, call records, sandbox handsets that talk."""
