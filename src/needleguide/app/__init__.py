"""The browser trainer (``needleguide app``): a local web app in which a trainee sets up a
procedure (with the advisor's ranking), scans with ultrasound or images with fluoroscopy,
handles the needle, injects a test dose and gets the scored result and report of
``simulate``. The server (FastAPI, WebSockets) hosts one ``live.trainer.TrainerSession``
per session; the front end (``static/``) ships in the package, with no build step."""

from needleguide.app.server import create_app
from needleguide.app.store import SessionStore

__all__ = ["SessionStore", "create_app"]
