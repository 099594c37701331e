"""TotalSegmentator structure names -> needleguide tissue names.

TotalSegmentator (Wasserthal et al., Radiology: AI 2023) writes either one binary mask per
structure (``segmentations/NAME.nii.gz``, its default) or, with ``--ml``, one multilabel
NIfTI whose integer ids are named by its class map (task ``total``: v1 104 classes, v2
117) and, since v1.5, by an XML label table in a NIfTI header extension. This module holds:

* ``TOTAL_V1`` / ``TOTAL_V2``: the v1 / v2 ``total`` class maps (id -> name, data in
  ``totalseg_ids``), used when a multilabel file carries neither a sidecar JSON nor the
  header table (``label_tables`` decides which);
* ``FROM_HU``: names known but left to the HU classification (v1 ``face``);
* ``tissue_for(name)``: the needleguide tissue a structure maps to (or ``None``: unknown);
* ``AIR_SPLIT``: structures whose mask contains air (airway, lung, bowel): their voxels
  below the air threshold become ``internal_air``, the rest the mapped tissue.

TotalSegmentator labels whole bones: a ``vertebrae_L4`` mask holds the body *and* the
posterior elements, so it maps to ``vertebral_body`` (the level itself is kept in
``Patient.vertebrae``); a ``femur_*`` mask is the whole femur and maps to ``femoral_head``.
"""

from __future__ import annotations

import re

from needleguide.anatomy import totalseg_ids as _ids

LEVELS: tuple[str, ...] = (
    *(f"C{i}" for i in range(1, 8)),
    *(f"T{i}" for i in range(1, 13)),
    *(f"L{i}" for i in range(1, 6)),
    "S1",
)
"""Vertebral levels in cranio-caudal order (TotalSegmentator names them ``vertebrae_<L>``)."""


TOTAL_V1: dict[int, str] = _ids.TOTAL_V1
"""TotalSegmentator v1 task ``total``: multilabel id -> structure name (1..104)."""
TOTAL_V2: dict[int, str] = _ids.TOTAL_V2
"""TotalSegmentator v2 task ``total``: multilabel id -> structure name (1..117)."""

FROM_HU: frozenset[str] = frozenset({"face"})
"""Known names left to the HU classification (v1 ``face``: bone, soft tissue and air)."""

# Exact names -> tissue. Side suffixes (_left/_right) are stripped before lookup.
_EXACT: dict[str, str] = {
    "sacrum": "sacrum", "vertebrae_S1": "sacrum", "spinal_cord": "spinal_cord",
    "hip": "ilium", "femur": "femoral_head", "skull": "occiput",
    "sternum": "bone_cancellous", "clavicula": "bone_cancellous",
    "scapula": "bone_cancellous", "humerus": "bone_cancellous",
    "costal_cartilages": "soft_tissue", "vertebrae_body": "vertebral_body",
    "intervertebral_discs": "disc", "vertebrae": "vertebral_body",
    "aorta": "aorta", "inferior_vena_cava": "ivc",
    "common_carotid_artery": "carotid", "internal_carotid_artery": "carotid",
    "internal_jugular_vein": "internal_jugular",
    "autochthon": "paraspinal_muscle", "iliopsoas": "psoas",
    "gluteus_maximus": "gluteal_muscle", "gluteus_medius": "gluteal_muscle",
    "gluteus_minimus": "gluteal_muscle",
    "sternocleidomastoid": "neck_muscle", "trapezius": "neck_muscle",
    "levator_scapulae": "neck_muscle", "anterior_scalene": "neck_muscle",
    "middle_scalene": "neck_muscle", "posterior_scalene": "neck_muscle",
    "prevertebral": "longus_colli",
    "kidney": "kidney", "thyroid_gland": "thyroid", "esophagus": "oesophagus",
    "trachea": "trachea_wall", "larynx_air": "internal_air",
    "subcutaneous_fat": "subcutaneous_fat", "torso_fat": "subcutaneous_fat",
    "intermuscular_fat": "subcutaneous_fat", "skeletal_muscle": "soft_tissue",
    "brain": "soft_tissue",
}
_VESSELS = ("heart", "heart_myocardium", "heart_atrium", "heart_ventricle",
            "pulmonary_vein", "brachiocephalic_trunk", "subclavian_artery",
            "brachiocephalic_vein", "atrial_appendage", "superior_vena_cava",
            "portal_vein_and_splenic_vein", "iliac_artery", "iliac_vena", "pulmonary_artery")
_ORGANS = ("spleen", "gallbladder", "liver", "stomach", "pancreas", "adrenal_gland",
           "small_bowel", "duodenum", "colon", "urinary_bladder", "prostate", "kidney_cyst",
           "lung_upper_lobe", "lung_lower_lobe", "lung_middle_lobe", "lung")

AIR_SPLIT: frozenset[str] = frozenset(
    {"trachea", "lung_upper_lobe", "lung_lower_lobe", "lung_middle_lobe", "lung", "colon",
     "small_bowel", "duodenum", "stomach", "esophagus"})
"""Base names (side stripped) whose masks contain air: air voxels -> internal_air."""

_SIDE = re.compile(r"_(left|right)(_\d+)?$")
_VERT = re.compile(r"^vertebrae_([CTL]\d{1,2})$")
_RIB = re.compile(r"^rib_(left|right)_\d{1,2}$")


def base_name(name: str) -> str:
    """Structure name without its side suffix: ``autochthon_left`` -> ``autochthon``."""
    return _SIDE.sub("", name.strip())


def level_of(name: str) -> str | None:
    """Vertebral level of a TotalSegmentator name (``vertebrae_L4`` -> ``L4``), else None."""
    m = _VERT.match(name.strip())
    return m.group(1) if m and m.group(1) in LEVELS else None


def is_rib(name: str) -> bool:
    """Whether ``name`` is a numbered rib (``rib_left_1`` ... ``rib_right_12``)."""
    return bool(_RIB.match(name.strip()))


def tissue_for(name: str) -> str | None:
    """needleguide tissue name for a TotalSegmentator structure name; None if unknown."""
    n = name.strip()
    if level_of(n):
        return "vertebral_body"
    if _RIB.match(n):
        return "rib"
    if n in _EXACT:
        return _EXACT[n]
    b = base_name(n)
    if b in _EXACT:
        return _EXACT[b]
    if b in _VESSELS:
        return "blood_vessel"
    if b in _ORGANS:
        return "soft_tissue"
    return None


def parse_label_table_extension(header_extensions) -> dict[int, str]:
    """Label names from a TotalSegmentator multilabel NIfTI header extension (v2 writes an
    XML ``<Label Key="id" ...><![CDATA[name]]></Label>`` table); {} when there is none."""
    out: dict[int, str] = {}
    pat = re.compile(r'<Label\s+Key="(\d+)"[^>]*>\s*(?:<!\[CDATA\[)?([^<\]]+)')
    for ext in header_extensions:
        try:
            text = ext.get_content()
            text = text.decode("utf-8", "replace") if isinstance(text, bytes) else str(text)
        except Exception:  # an extension that is not text: not a label table
            continue
        for key, name in pat.findall(text):
            out[int(key)] = name.strip()
    return out
