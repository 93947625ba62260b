"""The engine: sessions that fetch app documents and run their verbs."""
