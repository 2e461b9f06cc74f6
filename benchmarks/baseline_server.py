"""The baseline: a bare OCPP-J answering machine on picows + uvloop.

It does the least any OCPP server must do for a CALL: accept the WebSocket upgrade on
``/ocpp/{id}`` with subprotocol ``ocpp1.6``, parse each text frame with orjson and answer
``[3, id, {}]``. No authentication, no schema validation, no storage, no logs. Whatever the
real server spends beyond this is the cost of chargegrid's own work.

The transport settings (frame cap, initial read buffer, idle ping) are the ones chargegrid's
server uses, so the memory figure compares application state, not buffer sizes.

    python benchmarks/baseline_server.py --port 9100
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import resource
import signal
from typing import Any

import orjson
import uvloop
from picows import (
    WSFrame,
    WSListener,
    WSMsgType,
    WSTransport,
    WSUpgradeRequest,
    WSUpgradeResponse,
    WSUpgradeResponseWithListener,
    ws_create_server,
)

# Same as chargegrid.ocpp.server.ServerConfig, so both servers hold the same buffers.
MAX_FRAME_SIZE = 64 * 1024
READ_BUFFER_INIT_SIZE = 2048
PING_INTERVAL_S = 60.0


class Answerer(WSListener):
    """Parses every text frame and answers a CALL with an empty CALLRESULT."""

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        mtype = frame.msg_type
        if mtype is WSMsgType.TEXT:
            try:
                msg: Any = orjson.loads(frame.get_payload_as_memoryview())
            except orjson.JSONDecodeError:
                return
            if type(msg) is list and len(msg) >= 3 and msg[0] == 2:
                transport.send(WSMsgType.TEXT, orjson.dumps([3, msg[1], {}]))
        elif mtype is WSMsgType.CLOSE:
            transport.send_close(frame.get_close_code())
            transport.disconnect()


_RESPONSE_101 = {"Sec-WebSocket-Protocol": "ocpp1.6"}


def factory(request: WSUpgradeRequest) -> Any:
    if not request.path.startswith(b"/ocpp/"):
        return None  # picows answers 404
    response = WSUpgradeResponse.create_101_response(extra_headers=_RESPONSE_101)
    return WSUpgradeResponseWithListener(response, Answerer())


def raise_nofile_limit() -> None:
    """Sockets are files: lift the soft limit to the hard one for 10,000 connections."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


async def serve(host: str, port: int) -> None:
    server = await ws_create_server(
        factory,
        host,
        port,
        max_frame_size=MAX_FRAME_SIZE,
        read_buffer_init_size=READ_BUFFER_INIT_SIZE,
        enable_auto_ping=True,
        auto_ping_idle_timeout=PING_INTERVAL_S,
        auto_ping_reply_timeout=PING_INTERVAL_S,
        websocket_handshake_timeout=10,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    server.close()
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(server.wait_closed(), 2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9100)
    args = parser.parse_args()
    raise_nofile_limit()
    uvloop.run(serve(args.host, args.port))


if __name__ == "__main__":
    main()
