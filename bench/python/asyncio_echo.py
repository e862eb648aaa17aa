"""TCP echo with 64-byte messages for bench/asyncio_echo_side_by_side.cpp: asyncio streams on
the default loop or on uvloop. The server prints "PORT n"; the client keeps C connections
busy for S seconds after a 0.3 s warm-up and prints "ROUNDTRIPS n"."""
import argparse
import asyncio
import time

MESSAGE = b"m" * 64
WARMUP = 0.3


async def echo(reader, writer):
    while True:
        data = await reader.read(65536)
        if not data:
            break
        writer.write(data)
        await writer.drain()
    writer.close()


async def serve():
    server = await asyncio.start_server(echo, "127.0.0.1", 0)
    print("PORT", server.sockets[0].getsockname()[1], flush=True)
    await server.serve_forever()


async def connection(port, start, end):
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    count = 0
    while True:
        writer.write(MESSAGE)
        await writer.drain()
        await reader.readexactly(len(MESSAGE))
        now = time.monotonic()
        if now >= end:
            break
        if now >= start:
            count += 1
    writer.close()
    return count


async def client(port, connections, seconds):
    start = time.monotonic() + WARMUP
    end = start + seconds
    counts = await asyncio.gather(*(connection(port, start, end) for _ in range(connections)))
    return sum(counts)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--role", choices=["server", "client"], required=True)
    parser.add_argument("--loop", choices=["asyncio", "uvloop"], default="asyncio")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--connections", type=int, default=1)
    parser.add_argument("--seconds", type=float, default=2.0)
    args = parser.parse_args()
    if args.loop == "uvloop":
        import uvloop
        uvloop.install()
    if args.role == "server":
        asyncio.run(serve())
    else:
        print("ROUNDTRIPS", asyncio.run(client(args.port, args.connections, args.seconds)),
              flush=True)


if __name__ == "__main__":
    main()
