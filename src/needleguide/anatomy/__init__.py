"""Anatomy: the virtual patient (labelmap + tissue table + landmarks + centerlines)."""

from needleguide.anatomy.patient import Centerline, Patient, Vertebra
from needleguide.anatomy.tissues import TISSUES, Tissue, TissueTable, default_tissue_table

__all__ = [
    "Centerline",
    "Patient",
    "Vertebra",
    "TISSUES",
    "Tissue",
    "TissueTable",
    "default_tissue_table",
]
