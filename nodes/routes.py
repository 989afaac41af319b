"""GET /ddcolor/models (also under /api/): the DDColor models ComfyUI holds, to observe loading and /free."""
from aiohttp import web

from .managed_model import status


def add_routes(server):
    async def models(request):
        return web.json_response(status())

    # PromptServer mirrors routes under /api/ itself, but only for routes added before it starts.
    server.routes.get("/ddcolor/models")(models)
