"""Running the emulator app on a socket: in-process (`running`) or until stopped (`serve`)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable

import anyio
from aiohttp import web

from scanner.emulator.app import build_app
from scanner.emulator.state import EmulatorState


@contextlib.asynccontextmanager
async def running(
    state: EmulatorState, host: str = "127.0.0.1", port: int = 0
) -> AsyncIterator[str]:
    """Serve `state` while the block runs; yields the base URL (port 0 = any free port)."""
    runner = web.AppRunner(
        build_app(state), access_log=None, handle_signals=False, shutdown_timeout=0.5
    )
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port)
        await site.start()
        server = site._server
        sockets = getattr(server, "sockets", None) or []
        bound = sockets[0].getsockname()[1] if sockets else port
        shown = f"[{host}]" if ":" in host else host
        yield f"http://{shown}:{bound}"
    finally:
        with anyio.CancelScope(shield=True):
            await runner.cleanup()


async def serve(
    state: EmulatorState, host: str, port: int, on_ready: Callable[[str], None] | None = None
) -> None:
    """Serve until cancelled; `on_ready(url)` is called once the socket listens."""
    async with running(state, host, port) as url:
        if on_ready is not None:
            on_ready(url)
        await anyio.sleep_forever()
