"""The trainer's web server with a stand-in session (fast): token on every request,
validation with the field named, the WebSocket stream (frames, state, errors, acks), and
a reconnect to the same session. The real session runs in tests/test_app_trainer.py."""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass, field

import cv2
import numpy as np
import pytest
from fastapi.testclient import TestClient

from needleguide.app import SessionStore, create_app
from needleguide.app.server import frame_message
from needleguide.app.store import Encoded
from needleguide.errors import UserError

TOKEN = "t" * 24


@dataclass
class _Frame:
    seq: int
    t_s: float
    rgb: np.ndarray
    ack: int
    events: list = field(default_factory=list)


class FakeSession:
    """Renders a grey image whose brightness is the number of 'advance' commands applied."""

    def __init__(self, request):
        self.request, self.queue, self.applied, self.seq, self.ack = request, [], 0, 0, -1
        self.closed = False

    def command(self, cmd):
        if cmd.get("op") not in ("advance", "pedal"):
            raise UserError(f"op: unknown command {cmd.get('op')!r}; choose one of: "
                            "advance, pedal")
        mm = cmd.get("mm", 1.0)
        if not isinstance(mm, (int, float)) or not 0.1 <= mm <= 20:
            raise UserError(f"mm: {mm} is outside the allowed range [0.1, 20] mm")
        self.queue.append(cmd)

    def tick(self, t_s):
        ev = []
        while self.queue:
            c = self.queue.pop(0)
            self.applied += c["op"] == "advance"
            self.ack = c.get("id", self.ack)
            ev.append({"t_s": t_s, "kind": "info", "text": c["op"]})
        rgb = np.full((48, 64, 3), min(10 * self.applied, 255), np.uint8)
        self.seq += 1
        return _Frame(self.seq, t_s, rgb, self.ack, ev)

    def state(self):
        return {"modality": "us", "applied": self.applied}

    def close(self):
        self.closed = True


@pytest.fixture()
def client():
    store = SessionStore(factory=FakeSession, max_sessions=2)
    with TestClient(create_app(TOKEN, store, fps=50.0)) as c:
        c.store = store
        yield c


def _new(client) -> str:
    r = client.post(f"/api/sessions?token={TOKEN}", json={"procedure": "sacroiliac"})
    assert r.status_code == 200, r.text
    return r.json()["sid"]


def _decode(msg: bytes):
    n = struct.unpack("<I", msg[:4])[0]
    hdr = json.loads(msg[4:4 + n])
    img = cv2.imdecode(np.frombuffer(msg[4 + n:], np.uint8), cv2.IMREAD_COLOR)
    return hdr, img


def test_every_request_needs_the_token(client):
    for path in ("/", "/static/app.js", "/api/procedures", "/api/sessions/x",
                 "/api/sessions/x/report"):
        r = client.get(path)
        assert r.status_code == 401 and r.json()["error"]["field"] == "token", path
        assert client.get(path + ("&" if "?" in path else "?") + "token=" + "u" * 24
                          ).status_code == 401
    assert client.post("/api/sessions", json={"procedure": "sacroiliac"}).status_code == 401
    r = client.get("/api/procedures", headers={"X-NG-Token": TOKEN})
    assert r.status_code == 200
    from starlette.websockets import WebSocketDisconnect

    sid = _new(client)
    with pytest.raises(WebSocketDisconnect) as e, \
            client.websocket_connect(f"/ws/{sid}?token=wrong") as ws:
        ws.receive_text()
    assert e.value.code == 1008


def test_page_and_catalogue(client):
    r = client.get(f"/?token={TOKEN}")
    assert r.status_code == 200 and TOKEN in r.text and "__NG_TOKEN__" not in r.text
    assert "default-src 'self'" in r.headers["content-security-policy"]
    assert client.get(f"/static/app.js?token={TOKEN}").status_code == 200
    assert client.get(f"/static/../server.py?token={TOKEN}").status_code == 404
    procs = client.get(f"/api/procedures?token={TOKEN}").json()
    ids = {p["id"] for p in procs}
    assert {"sacroiliac", "lumbar-transforaminal", "third-occipital"} <= ids
    assert "knee" not in ids  # no phantom region: cannot be simulated


def test_advise_cites_evidence(client):
    r = client.post(f"/api/advise?token={TOKEN}",
                    json={"procedure": "sacroiliac", "bmi": 38, "pregnant": True})
    assert r.status_code == 200, r.text
    a = r.json()
    assert a["ranking"][0]["modality"] in ("us", "landmark", "ct", "fluoro", "fluoro-dsa")
    cited = {k for row in a["ranking"] for x in row["reasons"] for k in x["evidence"]}
    assert cited and cited <= set(a["evidence"]) | cited
    assert all("citation" in v for v in a["evidence"].values())


@pytest.mark.parametrize("body, fld", [
    ({"procedure": "sacroiliac", "bmi": 90}, "bmi"),
    ({"procedure": "sacroiliac", "modality": "mri"}, "modality"),
    ({"procedure": "sacroiliac", "pixels": 4}, "pixels"),
    ({"procedure": "sacroiliac", "colour": 1}, "colour"),
    ({"bmi": 20}, "procedure"),
])
def test_bad_setup_names_the_field(client, body, fld):
    r = client.post(f"/api/sessions?token={TOKEN}", json=body)
    assert r.status_code == 422
    assert r.json()["error"]["field"] == fld, r.json()
    r = client.post(f"/api/sessions?token={TOKEN}", content=b"{not json",
                    headers={"content-type": "application/json"})
    assert r.status_code == 422 and r.json()["error"]["field"] == "body"


def test_session_limit(client):
    _new(client), _new(client)
    r = client.post(f"/api/sessions?token={TOKEN}", json={"procedure": "sacroiliac"})
    assert r.status_code == 422 and r.json()["error"]["field"] == "sessions"


def test_stream_commands_errors_and_reconnect(client):
    sid = _new(client)
    other = _new(client)
    with client.websocket_connect(f"/ws/{sid}?token={TOKEN}") as ws:
        assert json.loads(ws.receive_text())["type"] == "state"
        ws.send_text(json.dumps({"id": 1, "op": "advance", "mm": 2}))
        ws.send_text(json.dumps({"id": 2, "op": "advance", "mm": 99}))
        ws.send_text("{broken")
        ws.send_text(json.dumps({"id": 3, "op": "advance"}))
        errors, hdr = [], None
        for _ in range(200):
            m = ws.receive()
            if m.get("bytes"):
                hdr, img = _decode(m["bytes"])
                if hdr["ack"] >= 3:
                    break
            else:
                j = json.loads(m["text"])
                if j["type"] == "error":
                    errors.append(j)
        assert hdr is not None and hdr["ack"] == 3 and img.shape == (48, 64, 3)
        assert abs(int(img[0, 0, 0]) - 20) <= 3  # two advances applied
        assert [(e["id"], e["field"]) for e in errors] == [(2, "mm"), (None, "message")]
    # the other session is untouched, and a reload reconnects to this one's last frame
    assert client.get(f"/api/sessions/{other}?token={TOKEN}").json()["state"]["applied"] == 0
    with client.websocket_connect(f"/ws/{sid}?token={TOKEN}") as ws:
        m = ws.receive()
        hdr, _ = _decode(m["bytes"])
        assert hdr["ack"] == 3
    r = client.get(f"/api/sessions/{sid}/result?token={TOKEN}")
    assert r.status_code == 409 and r.json()["error"]["field"] == "result"
    assert client.delete(f"/api/sessions/{sid}?token={TOKEN}").json()["closed"]
    assert client.get(f"/api/sessions/{sid}?token={TOKEN}").status_code == 404


def test_frame_message_layout():
    enc = Encoded(7, 1.25, 3, 4, 2, b"JPEG")
    msg = frame_message(enc)
    n = struct.unpack("<I", msg[:4])[0]
    assert json.loads(msg[4:4 + n]) == {"seq": 7, "t_s": 1.25, "ack": 3, "w": 4, "h": 2}
    assert msg[4 + n:] == b"JPEG"
