"""Tissue table: label id -> name, group, X-ray material and acoustic properties.

Acoustic values follow ../shared/PHYSICS.md (Duck 1990; IT'IS; Szabo). ``backscatter_db``
is the diffuse (speckle) scattering strength relative to muscle (0 dB); it is an
*assumption* (typical appearance: fat and fluid darker, ligament and tendon brighter).
X-ray ``material`` keys are resolved to compositions by the fluoroscopy imager (ICRU-44),
scaled by ``density_g_cm3``.
"""

from __future__ import annotations

from collections.abc import Iterable

from pydantic import BaseModel, ConfigDict, Field


class Tissue(BaseModel):
    """Properties of one labelled structure."""

    model_config = ConfigDict(frozen=True)

    label: int = Field(ge=0, le=255)
    name: str
    group: str  # air, skin, fat, muscle, bone, cartilage, ligament, fluid, neural, vessel, organ
    material: str  # X-ray material key (see fluoro materials)
    density_g_cm3: float = Field(gt=0)
    speed_m_s: float = Field(gt=0)
    rho_kg_m3: float = Field(gt=0)
    alpha_db_cm_mhz: float = Field(ge=0)
    backscatter_db: float  # diffuse scattering relative to muscle; -60 = anechoic
    color: tuple[int, int, int]
    description: str = ""

    @property
    def impedance_mrayl(self) -> float:
        """Acoustic impedance Z = rho c in MRayl."""
        return self.speed_m_s * self.rho_kg_m3 / 1e6

    @property
    def is_bone(self) -> bool:
        return self.group == "bone"


def _t(label, name, group, material, dens, c, rho, alpha, bs, color, desc=""):
    return Tissue(
        label=label, name=name, group=group, material=material, density_g_cm3=dens,
        speed_m_s=c, rho_kg_m3=rho, alpha_db_cm_mhz=alpha, backscatter_db=bs, color=color,
        description=desc,
    )


# Acoustic presets (c m/s, rho kg/m3, alpha dB/cm/MHz) from PHYSICS.md
_FAT = (1450, 950, 0.55)
_MUSCLE = (1580, 1050, 1.1)
_BLOOD = (1575, 1060, 0.18)
_LIG = (1750, 1100, 4.5)
_CART = (1660, 1100, 1.5)
_CSF = (1500, 1000, 0.004)
_SKIN = (1600, 1100, 2.0)
_CORT = (3750, 1900, 15.0)
_CANC = (3000, 1600, 15.0)
_AIR = (343, 1.2, 1.6)
_SOFT = (1560, 1050, 0.8)
_NERVE = (1630, 1075, 1.0)

BONE_CORT = (236, 230, 205)
BONE_CANC = (214, 200, 160)

TISSUES: tuple[Tissue, ...] = (
    _t(0, "air", "air", "air", 0.0012, *_AIR, -60, (0, 0, 0), "outside the body"),
    _t(1, "skin", "skin", "skin", 1.09, *_SKIN, 6, (233, 190, 170)),
    _t(2, "subcutaneous_fat", "fat", "adipose", 0.95, *_FAT, -8, (250, 225, 130)),
    _t(3, "paraspinal_muscle", "muscle", "muscle", 1.05, *_MUSCLE, 0, (190, 70, 70),
       "erector spinae and multifidus"),
    _t(4, "psoas", "muscle", "muscle", 1.05, *_MUSCLE, 0, (170, 60, 80)),
    _t(5, "gluteal_muscle", "muscle", "muscle", 1.05, *_MUSCLE, 0, (200, 90, 90)),
    _t(6, "vertebral_body", "bone", "cancellous_bone", 1.18, *_CANC, 0, BONE_CANC),
    _t(7, "pedicle", "bone", "cortical_bone", 1.55, *_CORT, 0, (240, 200, 120)),
    _t(8, "lamina", "bone", "cortical_bone", 1.55, *_CORT, 0, (230, 215, 150)),
    _t(9, "spinous_process", "bone", "cortical_bone", 1.45, *_CORT, 0, (225, 225, 175)),
    _t(10, "transverse_process", "bone", "cortical_bone", 1.45, *_CORT, 0, (220, 190, 140)),
    _t(11, "superior_articular_process", "bone", "cortical_bone", 1.55, *_CORT, 0,
       (245, 180, 100)),
    _t(12, "inferior_articular_process", "bone", "cortical_bone", 1.55, *_CORT, 0,
       (250, 160, 90)),
    _t(13, "facet_joint_space", "fluid", "cartilage", 1.05, *_CSF, -30, (120, 200, 255),
       "synovial joint space with cartilage"),
    _t(14, "facet_capsule", "ligament", "soft_tissue", 1.1, *_LIG, 8, (90, 140, 220)),
    _t(15, "disc", "cartilage", "cartilage", 1.1, *_CART, -4, (120, 170, 200),
       "annulus fibrosus and nucleus pulposus"),
    _t(16, "foramen", "fat", "adipose", 0.95, *_FAT, -6, (255, 240, 160),
       "intervertebral foramen: fat around the exiting root"),
    _t(17, "sacrum", "bone", "cancellous_bone", 1.25, *_CANC, 0, (225, 205, 165)),
    _t(18, "sacral_foramen", "fat", "adipose", 0.95, *_FAT, -6, (255, 235, 150)),
    _t(19, "sacral_hiatus", "fat", "adipose", 0.95, *_FAT, -6, (255, 250, 180),
       "caudal opening of the sacral canal (epidural fat below the ligament)"),
    _t(20, "sacrococcygeal_ligament", "ligament", "soft_tissue", 1.1, *_LIG, 10,
       (80, 120, 200)),
    _t(21, "coccyx", "bone", "cancellous_bone", 1.25, *_CANC, 0, (215, 195, 160)),
    _t(22, "ilium", "bone", "cancellous_bone", 1.3, *_CANC, 0, (230, 210, 170)),
    _t(23, "sij_space", "fluid", "cartilage", 1.05, *_CART, -20, (100, 190, 240),
       "sacroiliac joint space"),
    _t(24, "femoral_head", "bone", "cancellous_bone", 1.3, *_CANC, 0, (235, 215, 175)),
    _t(25, "femoral_neck", "bone", "cancellous_bone", 1.35, *_CANC, 0, (240, 220, 180)),
    _t(26, "acetabulum", "bone", "cancellous_bone", 1.35, *_CANC, 0, (220, 200, 160)),
    _t(27, "hip_capsule", "ligament", "soft_tissue", 1.1, *_LIG, 8, (70, 110, 210),
       "hip joint capsule and joint space"),
    _t(28, "ligamentum_flavum", "ligament", "soft_tissue", 1.1, *_LIG, 10, (240, 220, 60)),
    _t(29, "epidural_fat", "fat", "adipose", 0.95, *_FAT, -6, (255, 255, 120),
       "epidural space"),
    _t(30, "dura", "ligament", "soft_tissue", 1.1, *_LIG, 8, (150, 150, 230)),
    _t(31, "csf", "fluid", "csf", 1.007, *_CSF, -60, (60, 120, 255)),
    _t(32, "spinal_cord", "neural", "soft_tissue", 1.04, *_NERVE, -10, (250, 250, 250),
       "spinal cord / cauda equina"),
    _t(33, "nerve_root", "neural", "soft_tissue", 1.04, *_NERVE, -2, (255, 255, 0)),
    _t(34, "drg", "neural", "soft_tissue", 1.04, *_NERVE, -2, (255, 200, 0),
       "dorsal root ganglion"),
    _t(35, "segmental_artery", "vessel", "blood", 1.06, *_BLOOD, -50, (230, 0, 0),
       "segmental / radicular artery"),
    _t(36, "epidural_venous_plexus", "vessel", "blood", 1.06, *_BLOOD, -50, (60, 60, 200)),
    _t(37, "aorta", "vessel", "blood", 1.06, *_BLOOD, -50, (200, 0, 0)),
    _t(38, "ivc", "vessel", "blood", 1.06, *_BLOOD, -50, (40, 40, 170)),
    _t(39, "vertebral_artery", "vessel", "blood", 1.06, *_BLOOD, -50, (255, 40, 40)),
    _t(40, "carotid", "vessel", "blood", 1.06, *_BLOOD, -50, (210, 20, 20)),
    _t(41, "internal_jugular", "vessel", "blood", 1.06, *_BLOOD, -50, (30, 30, 160)),
    _t(42, "anterior_tubercle", "bone", "cortical_bone", 1.45, *_CORT, 0, (255, 170, 60),
       "C6 anterior (Chassaignac) tubercle and other cervical transverse-process tubercles"),
    _t(43, "longus_colli", "muscle", "muscle", 1.05, *_MUSCLE, 0, (160, 50, 100)),
    _t(44, "thyroid", "organ", "soft_tissue", 1.05, 1560, 1050, 1.0, 6, (180, 110, 60)),
    _t(45, "oesophagus", "organ", "muscle", 1.05, *_MUSCLE, 2, (200, 140, 110)),
    _t(46, "third_occipital_nerve", "neural", "soft_tissue", 1.04, *_NERVE, -2,
       (255, 255, 80)),
    _t(47, "medial_branch", "neural", "soft_tissue", 1.04, *_NERVE, -2, (255, 230, 60)),
    _t(48, "soft_tissue", "organ", "soft_tissue", 1.06, *_SOFT, 2, (200, 150, 140),
       "viscera and other soft tissue"),
    _t(49, "internal_air", "air", "air", 0.0012, *_AIR, -60, (20, 20, 20),
       "trachea / bowel gas"),
    _t(50, "occiput", "bone", "cortical_bone", 1.6, *_CORT, 0, (225, 215, 180)),
    _t(51, "rib", "bone", "cortical_bone", 1.4, *_CORT, 0, (225, 225, 200)),
    _t(52, "neck_muscle", "muscle", "muscle", 1.05, *_MUSCLE, 0, (185, 80, 80),
       "sternocleidomastoid, scalenes, posterior neck muscles"),
    _t(53, "hip_cartilage", "cartilage", "cartilage", 1.1, *_CART, -20, (140, 210, 240),
       "articular cartilage of the hip"),
    _t(54, "interspinous_ligament", "ligament", "soft_tissue", 1.1, *_LIG, 8, (100, 160, 200),
       "interspinous and supraspinous ligaments"),
    _t(55, "trachea_wall", "cartilage", "cartilage", 1.1, *_CART, 4, (170, 200, 220)),
    _t(56, "kidney", "organ", "soft_tissue", 1.05, 1560, 1050, 1.0, -2, (150, 60, 60)),
    # Generic materials for CT import without a labelmap (anatomy/importer.py)
    _t(57, "bone_cancellous", "bone", "cancellous_bone", 1.18, *_CANC, 0, BONE_CANC,
       "bone of cancellous CT density (imported CT, no labelmap)"),
    _t(58, "bone_cortical", "bone", "cortical_bone", 1.6, *_CORT, 0, BONE_CORT,
       "dense cortical bone (imported CT, no labelmap)"),
    _t(59, "metal", "metal", "steel", 7.85, 5900, 7850, 0.0, 0, (120, 220, 255),
       "metal implant or hardware (imported CT)"),
    _t(60, "blood_vessel", "vessel", "blood", 1.06, *_BLOOD, -50, (170, 30, 60),
       "other named vessel or heart chamber (imported labelmap)"),
    _t(61, "muscle", "muscle", "muscle", 1.05, *_MUSCLE, 0, (175, 85, 75),
       "other skeletal muscle: abdominal wall, quadratus lumborum, iliacus, thigh"),
    # Whole-spine phantom (chest)
    _t(62, "lung", "air", "soft_tissue", 0.26, *_AIR, -60, (60, 70, 90),
       "lung parenchyma: air with its tissue, about -750 HU (acoustically air)"),
    _t(63, "clavicle", "bone", "cortical_bone", 1.4, *_CORT, 0, (230, 220, 190)),
    _t(64, "sternum", "bone", "cancellous_bone", 1.25, *_CANC, 0, (220, 205, 170)),
)


class TissueTable:
    """Lookup of :class:`Tissue` by label id or name."""

    def __init__(self, tissues: Iterable[Tissue]):
        self._by_label: dict[int, Tissue] = {}
        self._by_name: dict[str, Tissue] = {}
        for t in tissues:
            if t.label in self._by_label or t.name in self._by_name:
                raise ValueError(f"duplicate tissue label or name: {t.label} {t.name}")
            self._by_label[t.label] = t
            self._by_name[t.name] = t

    def __getitem__(self, key: int | str) -> Tissue:
        if isinstance(key, str):
            return self._by_name[key]
        return self._by_label[int(key)]

    def __contains__(self, key: int | str) -> bool:
        return (key in self._by_name) if isinstance(key, str) else (int(key) in self._by_label)

    def __iter__(self):
        return iter(sorted(self._by_label.values(), key=lambda t: t.label))

    def __len__(self) -> int:
        return len(self._by_label)

    def label(self, name: str) -> int:
        """Label id of the tissue called ``name``."""
        return self._by_name[name].label

    def labels_in_group(self, group: str) -> list[int]:
        """Label ids of every tissue in ``group`` (e.g. 'bone', 'vessel')."""
        return [t.label for t in self if t.group == group]

    def lut(self, attribute: str, default: float = 0.0):
        """A 256-entry numpy lookup table of a numeric attribute indexed by label."""
        import numpy as np

        out = np.full(256, default, dtype=np.float64)
        for t in self:
            out[t.label] = float(getattr(t, attribute))
        return out

    def color_lut(self):
        """(256, 3) uint8 colour lookup table indexed by label."""
        import numpy as np

        out = np.zeros((256, 3), dtype=np.uint8)
        for t in self:
            out[t.label] = t.color
        return out

    def to_json(self) -> dict[str, dict]:
        """JSON-able mapping label id (as string) -> properties (for tissues.json)."""
        return {
            str(t.label): {**t.model_dump(), "impedance_mrayl": round(t.impedance_mrayl, 4)}
            for t in self
        }


def default_tissue_table() -> TissueTable:
    """The built-in tissue table shared by the phantom, the importer and both imagers."""
    return TissueTable(TISSUES)
