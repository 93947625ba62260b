"""SMPP 3.4, written sans-I/O: PDUs to and from bytes, and the session state machine.

Nothing in this package touches a socket, an event loop or the clock. `pdu` turns PDUs
into bytes and back, `session` decides what is legal when and keeps the window and the
timers; the I/O shell that reads, writes and arms timers lives elsewhere.
"""
