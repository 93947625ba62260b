"""SIP, written like the SMPP package: a sans-I/O protocol core and a thin asyncio shell.

The core touches no socket, event loop or clock: `message` parses and builds SIP messages,
`sdp` does offer/answer for G.711, `transaction` holds RFC 3261's transaction state
machines, `dialog` the dialogs, `auth` digest credentials. The shell does the I/O:
`transport` (UDP and TCP), `useragent` (the `UserAgent` the rest of Verbal uses, which
drives transactions and timers) and `calls` (the call objects it hands out).
See docs/voice.md.
"""
