"""Scene: Patient + Needle + Injectate + device poses at one instant (immutable snapshots)."""

from needleguide.scene.needle import GAUGE_OD_MM, Needle
from needleguide.scene.scene import InjectateSource, Scene, SparseField

__all__ = ["GAUGE_OD_MM", "Needle", "InjectateSource", "Scene", "SparseField"]
