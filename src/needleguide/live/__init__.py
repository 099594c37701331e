"""One running session driven by events (tracker transforms, keys), shared by the
OpenIGTLink server and the browser trainer (docs/live.md)."""

from needleguide.live.config import LiveConfig, LiveEvent, LiveFrame
from needleguide.live.session import LiveSession

__all__ = ["LiveConfig", "LiveEvent", "LiveFrame", "LiveSession"]
