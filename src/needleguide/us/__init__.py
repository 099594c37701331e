"""Ultrasound: probes, named views and the real-time B-mode simulator (see docs/us.md)."""

from needleguide.us.imager import USImager
from needleguide.us.probe import PROBES, USSettings, make_settings

__all__ = ["PROBES", "USImager", "USSettings", "make_settings"]
