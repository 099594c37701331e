"""Fluoroscopy imager: C-arm geometry, projector, spectra, noise, DSA, dose (docs/fluoro.md).

Main entry points: :class:`CArm` / :func:`named_view` (poses), :class:`Fluoroscope`
(``frame(scene, mode)``, cumulative ``dose_total``), :func:`dsa_sequence`,
:func:`advance_sequence`, :class:`FluoroSettings` / :func:`make_settings`.
"""

from needleguide.fluoro.carm import VIEWS, CArm, CArmGeometry, named_view
from needleguide.fluoro.imager import Fluoroscope
from needleguide.fluoro.sequences import advance_sequence, dsa_sequence, live_run, plan_needle
from needleguide.fluoro.settings import FluoroSettings, make_settings

__all__ = ["VIEWS", "CArm", "CArmGeometry", "Fluoroscope", "FluoroSettings",
           "advance_sequence", "dsa_sequence", "live_run", "make_settings", "named_view",
           "plan_needle"]
