#!/usr/bin/python3
"""Python websockets with ssl, the wss peer of bench/compare.sh (websockets-tls):
    websockets_tls_echo.py PORT CERT KEY
One process, asyncio; every message goes back unchanged."""
import asyncio
import ssl
import sys

import websockets


async def echo(ws, path=None):
    async for m in ws:
        await ws.send(m)


async def main(port, cert, key):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    async with websockets.serve(echo, "127.0.0.1", port, ssl=ctx, compression=None,
                                max_size=None, ping_interval=None, backlog=4096):
        await asyncio.Future()


if __name__ == "__main__":
    if len(sys.argv) != 4:
        sys.exit("usage: websockets_tls_echo.py PORT CERT KEY")
    try:
        asyncio.run(main(int(sys.argv[1]), sys.argv[2], sys.argv[3]))
    except KeyboardInterrupt:
        pass
