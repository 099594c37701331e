"""Lab: labelled simulated cases and the evaluation harness (``needleguide evaluate``).

Unlike :mod:`needleguide.guidance`, the lab reads the simulators (anatomy, scene, us,
fluoro) and the truth of every frame; it hands the analysers the frames without truth.

- ``needle_cases`` / ``eval_needle``: needle frames (US and FL) and ``evaluate needle``.
- ``eval_levels`` (with ``eval_levels_cases``, ``eval_levels_spine``, ``eval_levels_us``,
  ``session.level_sweep``): ``evaluate levels``.
- ``eval_contrast`` (with ``eval_observer``, the human-observer model): ``evaluate contrast``.
- ``trial*``, ``population``, ``reproduction``: virtual trials (docs/trials.md).

Nothing here imports :mod:`needleguide.cli` (tests/test_architecture.py).
"""
