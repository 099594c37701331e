"""Guidance analysers: read a Frame (pixels, spacing, settings) and never its truth."""
