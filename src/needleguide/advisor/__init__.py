"""Evidence-cited modality advisor (US, FL, FL+DSA, CT, landmark) for pain/MSK injections.

>>> from needleguide.advisor import advise
>>> advise(procedure="caudal", pregnant=True).first.modality
'us'
"""

from __future__ import annotations

from needleguide.advisor.engine import (
    GRADE_SCORES,
    Advice,
    AdvisorWarning,
    RankedModality,
    Reason,
    advise,
    band,
    load_appraisals,
    missing_evidence,
)
from needleguide.advisor.evidence import MODALITIES, EvidenceTable, load_evidence
from needleguide.advisor.inputs import AdviceRequest

__all__ = [
    "GRADE_SCORES", "MODALITIES", "Advice", "AdviceRequest", "AdvisorWarning", "EvidenceTable",
    "RankedModality", "Reason", "advise", "band", "load_appraisals", "load_evidence",
    "missing_evidence",
]
