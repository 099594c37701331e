"""Simulated procedure sessions (issue 8): plan, advance, image, correct from the guidance
analysers, confirm, inject, score. ``run_session(SessionConfig.build(...))``."""

from needleguide.session.engine import run_session
from needleguide.session.models import Event, SessionConfig, SessionResult, StepRecord

__all__ = ["Event", "SessionConfig", "SessionResult", "StepRecord", "run_session"]
