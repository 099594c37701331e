"""The trainer's web server: FastAPI routes, the session token, and one WebSocket per open
page that streams the session's frames (JPEG) and state and takes the trainee's commands.

Security: the app binds 127.0.0.1 unless told otherwise (``cli/app.py``); every HTTP
request and every WebSocket must carry the token (``?token=`` or the ``X-NG-Token``
header), compared in constant time; request bodies and commands are validated, and a bad
value comes back as ``{"error": {"field", "message"}}`` (HTTP 4xx) or a WebSocket
``{"type": "error", ...}`` message that the page shows. Nothing a page sends ends the
server or another session.

WebSocket stream (docs/app.md): binary = uint32 little-endian header length, UTF-8 JSON
header ``{seq, t_s, ack, w, h}``, JPEG bytes; text = ``state``, ``events``, ``error``,
``result`` messages. A command wakes the session's pump at once (a key press is answered
by the next frame rendered, not the next clock tick); otherwise the pump renders at
``fps`` (ultrasound; fluoroscopy renders only while the pedal is down, a spot or DSA run
is taken or a test dose runs — the session decides)."""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
import struct
import time
from contextlib import asynccontextmanager
from importlib import resources
from typing import Any

from fastapi import FastAPI, Request, WebSocket, WebSocketDisconnect
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, Response

from needleguide.app.models import AdviseBody, SessionBody, error_body, field_of, parse
from needleguide.app.store import Encoded, Hosted, SessionStore
from needleguide.errors import UserError

log = logging.getLogger("needleguide.app")
TOKEN_HEADER = "x-ng-token"
MAX_MESSAGE_BYTES = 4096
STATE_EVERY_S = 1.0
STATIC = {"app.js": "text/javascript", "app.css": "text/css"}
CSP = ("default-src 'self'; img-src 'self' blob: data:; connect-src 'self' ws: wss:; "
       "style-src 'self'; script-src 'self'; frame-ancestors 'none'")


def _static(name: str) -> str:
    return resources.files("needleguide.app").joinpath("static", name).read_text("utf-8")


def frame_message(enc: Encoded) -> bytes:
    """The binary WebSocket message of one frame."""
    hdr = json.dumps(enc.header(), separators=(",", ":")).encode()
    return struct.pack("<I", len(hdr)) + hdr + enc.jpeg


def _procedures() -> list[dict[str, Any]]:
    from needleguide.procedures import load_catalogue

    out = []
    for p in load_catalogue().procedures:
        if p.phantom_region is None:
            continue
        levels = list(p.phantom_levels or p.levels)
        out.append({"id": p.id, "name": p.name, "modalities": ["us", "fluoro"],
                    "levels": levels, "default_level": p.default_level,
                    "sides": ["left", "right"] if p.default_side else [],
                    "default_side": p.default_side, "tolerance_mm": p.tolerance_mm,
                    "target": p.target_description})
    return out


def _advice(body: AdviseBody) -> dict[str, Any]:
    from needleguide.advisor import AdviceRequest, advise
    from needleguide.advisor.evidence import load_evidence

    req = AdviceRequest.build(
        procedure=body.procedure, level=body.level, bmi=body.bmi, age=body.age,
        pregnant=body.pregnant, contrast_allergy=body.contrast_allergy, egfr=body.egfr,
        diabetes=body.diabetes, anticoagulated=body.anticoagulated)
    adv = advise(req)
    rows = {r.id: r for r in load_evidence().rows}
    cited = sorted(adv.cited())
    return adv.to_json() | {"evidence": {k: {"value": rows[k].value,
                                             "citation": rows[k].citation}
                                         for k in cited if k in rows}}


def create_app(token: str, store: SessionStore | None = None, fps: float = 25.0) -> FastAPI:
    """The trainer app. ``token``: required on every request; ``store``: where sessions
    live (a new one by default); ``fps``: the ultrasound frame rate the pump aims at."""
    if not isinstance(token, str) or len(token) < 16:
        raise UserError("token: expected a string of at least 16 characters")
    store = store if store is not None else SessionStore()
    @asynccontextmanager
    async def lifespan(_app: FastAPI):
        yield
        store.close_all()

    app = FastAPI(title="needleguide trainer", docs_url=None, redoc_url=None,
                  openapi_url=None, lifespan=lifespan)
    app.state.store = store
    period = 1.0 / float(fps)

    def token_ok(given: str | None) -> bool:
        return isinstance(given, str) and secrets.compare_digest(given.encode(),
                                                                  token.encode())

    def refuse(status: int, message: str, field: str | None = None) -> JSONResponse:
        return JSONResponse(error_body(message, field), status_code=status)

    @app.middleware("http")
    async def _auth(request: Request, call_next):
        given = request.query_params.get("token") or request.headers.get(TOKEN_HEADER)
        if not token_ok(given):
            return refuse(401, "token: missing or wrong (open the URL the app printed)",
                          "token")
        resp = await call_next(request)
        resp.headers["Content-Security-Policy"] = CSP
        resp.headers["X-Content-Type-Options"] = "nosniff"
        resp.headers["Cache-Control"] = "no-store"
        return resp

    @app.get("/")
    async def index() -> HTMLResponse:
        html = _static("index.html").replace("__NG_TOKEN__", token)
        return HTMLResponse(html)

    @app.get("/static/{name}")
    async def static(name: str) -> Response:
        if name not in STATIC:
            return refuse(404, f"file: {name!r} is not part of the app", "file")
        return Response(_static(name), media_type=STATIC[name])

    async def body_of(request: Request) -> Any:
        raw = await request.body()
        if len(raw) > 16384:
            raise UserError("body: larger than 16 kB")
        try:
            return json.loads(raw or b"{}")
        except (UnicodeDecodeError, json.JSONDecodeError):
            raise UserError("body: not valid JSON") from None

    @app.get("/api/procedures")
    async def procedures() -> JSONResponse:
        return JSONResponse(await asyncio.to_thread(_procedures))

    @app.post("/api/advise")
    async def advise(request: Request) -> JSONResponse:
        try:
            body = parse(AdviseBody, await body_of(request))
            return JSONResponse(await asyncio.to_thread(_advice, body))
        except UserError as e:
            return refuse(422, str(e))

    @app.post("/api/sessions")
    async def create(request: Request) -> JSONResponse:
        try:
            body = parse(SessionBody, await body_of(request))
            h = await asyncio.to_thread(store.create, body.model_dump())
        except UserError as e:
            return refuse(422, str(e))
        return JSONResponse({"sid": h.sid, "state": h.session.state()})

    def hosted(sid: str) -> Hosted | None:
        return store.get(sid)

    @app.get("/api/sessions/{sid}")
    async def get_session(sid: str) -> JSONResponse:
        h = hosted(sid)
        if h is None:
            return refuse(404, f"sid: no session {sid!r} (finished and closed, or the app "
                          "was restarted)", "sid")
        return JSONResponse({"sid": sid, "state": h.session.state()})

    @app.delete("/api/sessions/{sid}")
    async def delete_session(sid: str) -> JSONResponse:
        if not await asyncio.to_thread(store.remove, sid):
            return refuse(404, f"sid: no session {sid!r}", "sid")
        return JSONResponse({"sid": sid, "closed": True})

    @app.get("/api/sessions/{sid}/result")
    async def result(sid: str) -> JSONResponse:
        h = hosted(sid)
        if h is None:
            return refuse(404, f"sid: no session {sid!r}", "sid")
        if h.result_json is None:
            return refuse(409, "result: the session is not finished yet", "result")
        return JSONResponse(h.result_json)

    @app.get("/api/sessions/{sid}/report")
    async def report(sid: str) -> Response:
        h = hosted(sid)
        if h is None:
            return refuse(404, f"sid: no session {sid!r}", "sid")
        path = h.report_path()
        if path is None:
            return refuse(409, "report: the session is not finished yet", "report")
        return FileResponse(path, media_type="text/html",
                            filename=f"needleguide-trainer-{sid[:8]}.html")

    @app.websocket("/ws/{sid}")
    async def ws_session(ws: WebSocket, sid: str) -> None:
        if not token_ok(ws.query_params.get("token")):
            await ws.close(code=1008)
            return
        h = hosted(sid)
        await ws.accept()
        if h is None:
            await ws.send_json({"type": "error", "id": None, "field": "sid",
                                "message": f"sid: no session {sid!r}"})
            await ws.close(code=4404)
            return
        await _stream(ws, h, period)

    return app


async def _stream(ws: WebSocket, h: Hosted, period: float) -> None:
    """Serve one page of session ``h``: commands in, frames, state and events out."""
    wake = asyncio.Event()
    send_lock = asyncio.Lock()
    h.connections += 1

    async def send_text(obj: dict[str, Any]) -> None:
        async with send_lock:
            await ws.send_text(json.dumps(obj, separators=(",", ":")))

    async def send_state() -> None:
        await send_text({"type": "state", "state": h.session.state()})

    async def send_frame(enc: Encoded) -> None:
        async with send_lock:
            await ws.send_bytes(frame_message(enc))

    async def refuse(cid: Any, message: str) -> None:
        await send_text({"type": "error", "id": cid, "field": field_of(message),
                         "message": message})

    async def receive() -> None:
        while True:
            raw = await ws.receive_text()
            cid = None
            try:
                if len(raw) > MAX_MESSAGE_BYTES:
                    raise UserError(f"message: longer than {MAX_MESSAGE_BYTES} bytes")
                try:
                    cmd = json.loads(raw)
                except json.JSONDecodeError:
                    raise UserError("message: not valid JSON") from None
                if not isinstance(cmd, dict):
                    raise UserError("message: expected a JSON object with an 'op'")
                cid = cmd.get("id")
                if cid is not None and (isinstance(cid, bool) or not isinstance(cid, int)):
                    raise UserError(f"id: expected an integer, got {cid!r}")
                if cmd.get("op") == "finish":
                    res = await asyncio.to_thread(h.finish)
                    await send_text({"type": "result", "result": res})
                    await send_state()
                else:
                    h.session.command(cmd)
            except UserError as e:
                await refuse(cid, str(e))
            except Exception as e:  # noqa: BLE001 - a page must never end the server
                log.exception("command failed")
                await refuse(cid, f"command: failed ({type(e).__name__}: {e})")
            wake.set()

    async def pump() -> None:
        loop = asyncio.get_running_loop()
        last_state = -1e9
        last_ack = None
        while True:
            t_start = loop.time()
            try:
                enc = await asyncio.to_thread(h.tick)
            except Exception as e:  # noqa: BLE001 - report and keep serving
                log.exception("tick failed")
                await refuse(None, f"simulation: failed ({type(e).__name__}: {e})")
                enc = None
                await asyncio.sleep(0.5)
            if enc is not None:
                await send_frame(enc)
                if enc.events:
                    await send_text({"type": "events", "events": enc.events})
            now = loop.time()
            ack = None if enc is None else enc.ack
            if (enc is not None and (enc.events or ack != last_ack)) or \
                    now - last_state >= STATE_EVERY_S:
                await send_state()
                last_state, last_ack = now, ack if ack is not None else last_ack
            wait = period - (loop.time() - t_start)
            if wait > 0 and not wake.is_set():
                try:
                    await asyncio.wait_for(wake.wait(), wait)
                except TimeoutError:
                    pass
            wake.clear()

    try:
        if h.last is not None:
            await send_frame(h.last)
        await send_state()
        if h.result_json is not None:
            await send_text({"type": "result", "result": h.result_json})
        tasks = [asyncio.create_task(receive()), asyncio.create_task(pump())]
        done, pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
        for t in pending:
            t.cancel()
        for t in done:
            exc = t.exception()
            if exc is not None and not isinstance(exc, WebSocketDisconnect | RuntimeError):
                log.warning("session stream ended: %r", exc)
    except (WebSocketDisconnect, RuntimeError):
        pass
    finally:
        h.connections -= 1
        h.touched = time.monotonic()
        if h.connections == 0 and h.session.state().get("modality") == "fluoro":
            try:  # no foot on the pedal once the page is gone: the beam stops
                h.session.command({"op": "pedal", "down": False})
            except UserError:
                pass
