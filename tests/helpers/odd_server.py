"""A small HTTP server that answers Novacore paths with unusual but possible shapes."""

from __future__ import annotations

from collections.abc import Callable

from aiohttp import web


class OddServer:
    """Answers each path with the response a test sets for it; any other path with a 404."""

    def __init__(self) -> None:
        self.responses: dict[str, Callable[[], web.Response]] = {}
        self.url = ""
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.url = f"http://127.0.0.1:{self._runner.addresses[0][1]}"

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _handle(self, request: web.Request) -> web.Response:
        make = self.responses.get(request.path)
        return make() if make else web.json_response({"error": "not_found"}, status=404)
