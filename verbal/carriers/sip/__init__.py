"""SIP, written like the SMPP package: a sans-I/O protocol core and a thin asyncio shell."""
