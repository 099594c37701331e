"""TotalSegmentator ``total`` task: multilabel id -> structure name, v1 and v2 (data).

Checked against ``totalsegmentator/map_to_binary.py`` of wasserth/TotalSegmentator:
v1 = ``class_map["total"]`` of release v1.5.7 (104 classes; also kept as
``class_map["total_v1"]`` in v2), v2 = ``class_map["total"]`` of releases v2.2.0 to
v2.18.0 (117 classes). Releases v2.0.0 to v2.1.x ordered the ribs differently (ids 92-115:
``rib_right_4, rib_right_3, rib_left_1..12, rib_right_1, rib_right_2, rib_right_5..12``);
the same ids are ribs in both orders, so only the rib *number* read from the id table can
differ for maps of those releases (their header label table, when present, is exact).
"""

from __future__ import annotations

_LEVELS_DOWN = ("C1", "C2", "C3", "C4", "C5", "C6", "C7",
                *(f"T{i}" for i in range(1, 13)), "L1", "L2", "L3", "L4", "L5")
_RIBS = (*(f"rib_left_{i}" for i in range(1, 13)), *(f"rib_right_{i}" for i in range(1, 13)))

_V1 = (
    "spleen", "kidney_right", "kidney_left", "gallbladder", "liver", "stomach", "aorta",
    "inferior_vena_cava", "portal_vein_and_splenic_vein", "pancreas", "adrenal_gland_right",
    "adrenal_gland_left", "lung_upper_lobe_left", "lung_lower_lobe_left",
    "lung_upper_lobe_right", "lung_middle_lobe_right", "lung_lower_lobe_right",
    *(f"vertebrae_{lv}" for lv in reversed(_LEVELS_DOWN)),  # 18 L5 ... 41 C1
    "esophagus", "trachea", "heart_myocardium", "heart_atrium_left", "heart_ventricle_left",
    "heart_atrium_right", "heart_ventricle_right", "pulmonary_artery", "brain",
    "iliac_artery_left", "iliac_artery_right", "iliac_vena_left", "iliac_vena_right",
    "small_bowel", "duodenum", "colon", *_RIBS,  # 58 rib_left_1 ... 81 rib_right_12
    "humerus_left", "humerus_right", "scapula_left", "scapula_right", "clavicula_left",
    "clavicula_right", "femur_left", "femur_right", "hip_left", "hip_right", "sacrum", "face",
    "gluteus_maximus_left", "gluteus_maximus_right", "gluteus_medius_left",
    "gluteus_medius_right", "gluteus_minimus_left", "gluteus_minimus_right",
    "autochthon_left", "autochthon_right", "iliopsoas_left", "iliopsoas_right",
    "urinary_bladder",
)

_V2 = (
    "spleen", "kidney_right", "kidney_left", "gallbladder", "liver", "stomach", "pancreas",
    "adrenal_gland_right", "adrenal_gland_left", "lung_upper_lobe_left",
    "lung_lower_lobe_left", "lung_upper_lobe_right", "lung_middle_lobe_right",
    "lung_lower_lobe_right", "esophagus", "trachea", "thyroid_gland", "small_bowel",
    "duodenum", "colon", "urinary_bladder", "prostate", "kidney_cyst_left",
    "kidney_cyst_right", "sacrum", "vertebrae_S1",
    *(f"vertebrae_{lv}" for lv in reversed(_LEVELS_DOWN)),  # 27 L5 ... 50 C1
    "heart", "aorta", "pulmonary_vein", "brachiocephalic_trunk", "subclavian_artery_right",
    "subclavian_artery_left", "common_carotid_artery_right", "common_carotid_artery_left",
    "brachiocephalic_vein_left", "brachiocephalic_vein_right", "atrial_appendage_left",
    "superior_vena_cava", "inferior_vena_cava", "portal_vein_and_splenic_vein",
    "iliac_artery_left", "iliac_artery_right", "iliac_vena_left", "iliac_vena_right",
    "humerus_left", "humerus_right", "scapula_left", "scapula_right", "clavicula_left",
    "clavicula_right", "femur_left", "femur_right", "hip_left", "hip_right", "spinal_cord",
    "gluteus_maximus_left", "gluteus_maximus_right", "gluteus_medius_left",
    "gluteus_medius_right", "gluteus_minimus_left", "gluteus_minimus_right",
    "autochthon_left", "autochthon_right", "iliopsoas_left", "iliopsoas_right", "brain",
    "skull", *_RIBS,  # 92 rib_left_1 ... 115 rib_right_12
    "sternum", "costal_cartilages",
)

TOTAL_V1: dict[int, str] = {i + 1: n for i, n in enumerate(_V1)}
"""TotalSegmentator v1 task ``total``: id -> name (1..104)."""

TOTAL_V2: dict[int, str] = {i + 1: n for i, n in enumerate(_V2)}
"""TotalSegmentator v2 (>= 2.2) task ``total``: id -> name (1..117)."""

TABLES: dict[str, dict[int, str]] = {"totalseg-v1": TOTAL_V1, "totalseg-v2": TOTAL_V2}
"""The id tables by their ``--label-names`` value."""
