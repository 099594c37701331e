"""needleguide: image guidance for interventional pain and MSK injections (US and FL)."""

__version__ = "0.1.0"
