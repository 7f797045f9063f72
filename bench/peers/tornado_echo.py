#!/usr/bin/python3
"""Tornado WebSocket echo peer for bench/compare.sh (Debian python3-tornado).

    /usr/bin/python3 tornado_echo.py [--prefix] [--deflate] PORT

--prefix: the handler of Tornado's WebSocket tutorial, as written there: every
message comes back as "You said: " + message.  Without it: a pure echo, binary
messages echoed as binary, text as text.
--deflate (bench/deflate_compare.py): get_compression_options returns
Tornado's defaults written out (level 6, memLevel 8), which accepts
permessage-deflate and compresses every message.  Tornado has no server
setting for context takeover: it echoes the client's offer, keeping its zlib
streams across messages unless the offer says *_no_context_takeover.  One process, one IOLoop, listening on
127.0.0.1:PORT at /websocket (and at /).
"""
import argparse
import asyncio
import signal

import tornado.ioloop
import tornado.web
import tornado.websocket


class EchoWebSocket(tornado.websocket.WebSocketHandler):
    """The tutorial's handler (tornado.websocket docs)."""

    def open(self):
        pass

    def on_message(self, message):
        self.write_message(u"You said: " + message)

    def on_close(self):
        pass

    def check_origin(self, origin):
        return True


class PureEchoWebSocket(tornado.websocket.WebSocketHandler):
    """The same, echoing each message unchanged (binary stays binary)."""

    def on_message(self, message):
        self.write_message(message, binary=isinstance(message, bytes))

    def check_origin(self, origin):
        return True


class DeflateEchoWebSocket(PureEchoWebSocket):
    """The pure echo with permessage-deflate accepted."""

    def get_compression_options(self):
        return {"compression_level": 6, "mem_level": 8}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--prefix", action="store_true",
                    help='reply "You said: " + message (the tutorial)')
    ap.add_argument("--deflate", action="store_true",
                    help="accept permessage-deflate (level 6, memLevel 8)")
    ap.add_argument("port", type=int)
    args = ap.parse_args()
    if args.prefix and args.deflate:
        ap.error("--prefix and --deflate are separate peers")
    handler = EchoWebSocket if args.prefix else \
        DeflateEchoWebSocket if args.deflate else PureEchoWebSocket
    app = tornado.web.Application([(r"/websocket", handler), (r"/", handler)])

    async def serve():
        app.listen(args.port, address="127.0.0.1", backlog=4096)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()

    asyncio.run(serve())


if __name__ == "__main__":
    main()
