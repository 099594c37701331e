"""Injectate: where the injectate goes, from where the needle tip is (issue 4).

``Injectate(patient).inject(tip_mm, Injection(...))`` classifies the tip into
compartments (:func:`classify_tip`) and spreads each share by its mechanism; the object is
the scene's ``InjectateSource`` (``iodine_mg_ml(t)``, ``fluid_fraction(t)``) and reports
``summary(t)``. See docs/injectate.md.
"""

from needleguide.scene.injectate.agents import IOHEXOL_MG_ML, Agent, Injection, make_injection
from needleguide.scene.injectate.compartments import Compartment, classify_tip
from needleguide.scene.injectate.model import Injectate
from needleguide.scene.injectate.params import DEPENDENT_DIRECTION, SpreadParams

__all__ = ["Agent", "Compartment", "DEPENDENT_DIRECTION", "IOHEXOL_MG_ML", "Injectate",
           "Injection", "SpreadParams", "classify_tip", "make_injection"]
