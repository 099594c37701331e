"""Guidance analysers: read a Frame (pixels, spacing, settings) and never its truth.

- ``needle`` / ``tracking``: needle shaft, angle and tip in US and FL frames.
- :mod:`needleguide.guidance.levels`: vertebral level labels on FL AP and lateral frames
  (:func:`label_levels`; baseline :func:`baseline_levels`);
  :mod:`needleguide.guidance.levels_spine`: levels on any view of any part of the spine,
  counted from any anchor in view or "none" (``label_spine``); ``analyse``: levels and
  needle of one frame as ``needleguide analyse`` prints them.
- :mod:`needleguide.guidance.contrast`: contrast pattern and intravascular alarm from an
  FL sequence, live or DSA (:func:`classify_sequence`).

The labelled simulated cases and the ``needleguide evaluate`` harness live in
:mod:`needleguide.lab` (they read the simulators and the truth; nothing here imports
them, nor any imager, anatomy, scene, session, procedures or CLI module:
tests/test_architecture.py).
"""

from needleguide.guidance.contrast import ContrastResult, classify_sequence, draw_contrast
from needleguide.guidance.levels import LevelLabel, baseline_levels, draw_levels, label_levels

__all__ = ["ContrastResult", "LevelLabel", "baseline_levels", "classify_sequence",
           "draw_contrast", "draw_levels", "label_levels"]
