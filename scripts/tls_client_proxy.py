#!/usr/bin/env python3
"""A TLS client proxy for conformance runs: accepts plain TCP on --listen
and forwards each connection over TLS (Python's ssl, i.e. OpenSSL,
verifying the server against --cafile) to --connect. kosoku speaks no TLS,
so scripts/autobahn.sh runs its cases through this into wsgate's TLS layer.
Loopback only; stops when killed."""

import argparse
import asyncio
import ssl


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--listen", required=True, help="HOST:PORT, plain")
    ap.add_argument("--connect", required=True, help="HOST:PORT, TLS")
    ap.add_argument("--cafile", required=True)
    a = ap.parse_args()
    lhost, lport = a.listen.rsplit(":", 1)
    chost, cport = a.connect.rsplit(":", 1)
    for host in (lhost, chost):
        if not host.startswith("127."):
            raise SystemExit("loopback only")
    ctx = ssl.create_default_context(cafile=a.cafile)
    ctx.set_alpn_protocols(["http/1.1"])

    async def pipe(reader, writer, can_half_close):
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
            if can_half_close:
                writer.write_eof()
        except (ConnectionError, ssl.SSLError, OSError):
            pass

    async def handle(client_r, client_w):
        try:
            server_r, server_w = await asyncio.open_connection(
                chost, int(cport), ssl=ctx, server_hostname=chost
            )
        except (ConnectionError, ssl.SSLError, OSError):
            client_w.close()
            return
        # The client's end of stream cannot be passed on over TLS without
        # closing it; the server's can (plain TCP): each direction ends on
        # its own, then both sockets close.
        up = asyncio.create_task(pipe(client_r, server_w, False))
        await pipe(server_r, client_w, True)
        try:
            await asyncio.wait_for(up, 5)
        except asyncio.TimeoutError:
            pass
        for w in (server_w, client_w):
            try:
                w.close()
            except OSError:
                pass

    async def serve():
        server = await asyncio.start_server(handle, lhost, int(lport))
        async with server:
            await server.serve_forever()

    asyncio.run(serve())


if __name__ == "__main__":
    main()
