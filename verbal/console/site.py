"""The console's own files, its front door and its page for addresses it does not have."""

from __future__ import annotations

from fastapi import Request, Response
from fastapi.responses import FileResponse

from verbal.console.auth import User
from verbal.console.web import HERE, PageError, console_router, redirect

router = console_router()

# Served by name from a fixed list, so no path from a request ever reaches the file system.
STATIC = {
    path.name: path
    for path in (HERE / "static").iterdir()
    if path.suffix in (".js", ".css") and path.is_file()
}
MEDIA_TYPES = {".js": "text/javascript", ".css": "text/css"}


@router.get("/static/{name}")
async def static_file(name: str) -> Response:
    path = STATIC.get(name)
    if path is None:
        raise PageError(404, f"The console has no file {name}.")
    # Versioned by Verbal's release rather than by name: an hour is a fair compromise.
    return FileResponse(
        path,
        media_type=MEDIA_TYPES[path.suffix],
        headers={"Cache-Control": "public, max-age=3600", "X-Content-Type-Options": "nosniff"},
    )


@router.get("")
async def home(_: User) -> Response:
    return redirect("/handsets")


@router.get("/{path:path}")
async def not_found(request: Request, path: str, _: User) -> Response:
    if not path:
        return redirect("/handsets")
    raise PageError(404, f"There is no console page at {request.url.path}.")
