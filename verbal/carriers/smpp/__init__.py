"""SMPP 3.4: a sans-I/O core, and the asyncio shells that drive it.

The core touches no socket, event loop or clock: `pdu` turns PDUs into bytes and back,
`session` decides what is legal when and keeps the window and the timers, `text` turns
texts into short messages and back. Only the shells do I/O: they read, write and arm
timers around a session, `client` for an ESME's binds and `server` for an SMSC.
"""
