"""A TCP proxy on 127.0.0.1 that tests can cut: to drop a WebSocket mid-stream."""

from __future__ import annotations

import asyncio
import contextlib


class TcpProxy:
    """`reply_delay` holds every chunk from the target back that many seconds (order kept,
    no throughput limit): a slow server, e.g. a broker whose every PUBACK takes seconds."""

    def __init__(self, target_port: int, reply_delay: float = 0.0) -> None:
        self.target_port = target_port
        self.reply_delay = reply_delay
        self.port = 0
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self.connections = 0

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def down(self) -> None:
        """Stop accepting and abort every open connection."""
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        for writer in list(self._writers):
            writer.transport.abort()
        self._writers.clear()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            writer.transport.abort()
            return
        self._writers.update((writer, up_writer))

        async def pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
            with contextlib.suppress(OSError, asyncio.IncompleteReadError):
                while data := await source.read(65536):
                    sink.write(data)
                    await sink.drain()
            sink.transport.abort()

        async def delayed_pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
            loop = asyncio.get_running_loop()
            chunks: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()

            async def deliver() -> None:
                while True:
                    due, data = await chunks.get()
                    await asyncio.sleep(max(due - loop.time(), 0))
                    if not data:
                        break
                    sink.write(data)
                    await sink.drain()

            delivering = asyncio.ensure_future(deliver())
            with contextlib.suppress(OSError, asyncio.IncompleteReadError):
                while data := await source.read(65536):
                    chunks.put_nowait((loop.time() + self.reply_delay, data))
            chunks.put_nowait((loop.time() + self.reply_delay, b""))
            with contextlib.suppress(OSError):
                await delivering
            sink.transport.abort()

        replies = delayed_pipe if self.reply_delay > 0 else pipe
        await asyncio.gather(pipe(reader, up_writer), replies(up_reader, writer))
        self._writers.discard(writer)
        self._writers.discard(up_writer)
