"""Spread parameters. Every figure here that no source fixes is an *assumption*
(PHYSICS.md: "washout times: no source found"); each is exposed with its default and
documented in docs/injectate.md.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

Position = Literal["prone", "supine", "left_lateral", "right_lateral", "sitting"]

#: Direction (RAS, unit) in which a dense fluid sinks, for each patient position.
#: Prone: the anterior body wall faces the table, so the dependent side is anterior (+y).
DEPENDENT_DIRECTION: dict[str, tuple[float, float, float]] = {
    "prone": (0.0, 1.0, 0.0),
    "supine": (0.0, -1.0, 0.0),
    "left_lateral": (-1.0, 0.0, 0.0),  # lying on the left side: patient left is down
    "right_lateral": (1.0, 0.0, 0.0),
    "sitting": (0.0, 0.0, -1.0),
}


class SpreadParams(BaseModel):
    """Parameters of the injectate model (units in the names). All *assumptions* unless
    stated otherwise."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    # --- grid and tip classification -----------------------------------------------------
    grid_spacing_mm: float = Field(1.0, ge=0.25, le=3.0)
    """Voxel size of the local spread grids (mm)."""
    classify_radius_mm: float = Field(1.5, ge=0.25, le=10.0)
    """Neighbourhood radius around the tip that votes on the compartment (assumption)."""
    min_fraction: float = Field(0.1, ge=0.0, le=0.5)
    """Compartment shares below this are dropped and the rest renormalised (assumption)."""
    roi_start_mm: float = Field(40.0, ge=10.0, le=400.0)
    """Initial edge of the local grid around the tip; doubled while the spread touches its
    border, up to ``roi_max_mm`` (beyond which injectate counts as having left the grid)."""
    roi_max_mm: float = Field(200.0, ge=20.0, le=600.0)

    # --- extravascular filling -----------------------------------------------------------
    epidural_fill_fraction: float = Field(0.8, gt=0.0, le=1.0)
    """Share of an epidural-fat voxel the injectate can occupy (the rest is fat and
    veins): the loose, semi-liquid epidural fat is pushed aside (assumption)."""
    epidural_craniocaudal_anisotropy: float = Field(2.0, ge=1.0, le=10.0)
    """Epidural spread runs this many times more easily along the canal (z) than across
    (assumption)."""
    root_sleeve_preference: float = Field(6.0, ge=1.0, le=20.0)
    """Epidural injectate spreads this many times more easily along a nerve root's sleeve
    (within ``perineural_sheath_mm`` of the root) (assumption)."""
    foraminal_resistance_ratio: float = Field(3.0, ge=1.0, le=20.0)
    """Foraminal fat resists spread this many times more than the canal's epidural fat
    (transforaminal ligaments, denser fat) (assumption)."""
    epidural_texture_strength: float = Field(0.8, ge=0.0, le=2.0)
    """Amplitude of a seeded variation of spread resistance in the epidural fat (fat
    lobules and septa: irregular, streaky fronts; 0 = smooth) (assumption)."""
    epidural_texture_mm: tuple[float, float] = (2.5, 7.0)
    """Correlation lengths (across, along the canal) of that variation (assumption)."""
    dural_space_fill_fraction: float = Field(0.3, ge=0.0, le=1.0)
    """Share of a dura voxel epidural injectate can occupy: the potential space between
    the dura and the canal wall, thinner than a voxel (the ventral epidural line of the
    lateral view) (assumption; 0 keeps the injectate in the epidural fat)."""
    dural_space_resistance: float = Field(2.0, ge=1.0, le=20.0)
    """Spread along that potential space is this many times harder (assumption)."""
    soft_tissue_fill_fraction: float = Field(0.3, gt=0.0, le=1.0)
    """Interstitial share of muscle / fat the injectate can occupy (assumption)."""
    muscle_fibre_anisotropy: float = Field(3.0, ge=1.0, le=10.0)
    """Intramuscular spread runs this many times more easily along the fibres (z for the
    paraspinal and psoas muscles) (assumption)."""
    muscle_texture_strength: float = Field(0.6, ge=0.0, le=0.95)
    """Amplitude of a seeded fibre-aligned variation of spread resistance that makes the
    intramuscular front feathery (0 = smooth) (assumption)."""
    muscle_texture_length_mm: tuple[float, float] = (1.2, 8.0)
    """Correlation lengths (across, along the fibres) of that variation (assumption)."""
    perineural_sheath_mm: float = Field(1.5, ge=0.5, le=5.0)
    """Thickness of the perineural space around a nerve that perineural injectate fills
    (assumption)."""
    perineural_fill_fraction: float = Field(0.5, gt=0.0, le=1.0)
    perineural_resistance_ratio: float = Field(5.0, ge=1.0, le=100.0)
    """Spreading off the perineural sheath (into fat, muscle, epidural space) is this many
    times harder than along it (assumption)."""
    front_softening_mm: float = Field(1.0, ge=0.0, le=5.0)
    """Width (σ, mm) of the mass-conserving diffusion that softens every front
    (assumption; molecular diffusion over seconds is far smaller)."""
    tissue_clearance_s: float = Field(1800.0, gt=1.0)
    """Time constant of resorption of extravascular injectate (assumption: contrast
    persists over a procedure)."""

    # --- intrathecal ---------------------------------------------------------------------
    position: Position = "prone"
    csf_mixing_fraction: float = Field(0.5, gt=0.0, le=1.0)
    """Injectate share of the CSF it pools in (the rest is CSF) (assumption)."""
    gravity_downhill_discount: float = Field(0.9, ge=0.0, lt=1.0)
    """Hyperbaric contrast: spreading straight down costs (1 − this) of a level step
    (assumption)."""
    gravity_uphill_penalty: float = Field(6.0, ge=0.0, le=100.0)
    """Extra cost per mm climbed against gravity (assumption)."""
    dural_sleeve_mm: float = Field(1.6, ge=0.0, le=5.0)
    """CSF cuff around a nerve root in its dural sleeve, which intrathecal contrast fills
    (0: no sleeves) (assumption)."""
    cauda_strand_mm: float = Field(1.1, ge=0.0, le=3.0)
    """Radius of a cauda equina root in the sac: intrathecal contrast flows around it
    (a filling defect; 0: no strands) (assumption)."""

    # --- intra-articular -----------------------------------------------------------------
    facet_capacity_ml: float = Field(1.2, gt=0.0, le=5.0)
    """Lumbar facet capsule capacity before rupture (~1–1.5 mL, issue 4; assumption)."""
    sij_capacity_ml: float = Field(2.0, gt=0.0, le=10.0)
    """Sacroiliac joint capacity before extravasation (assumption)."""
    hip_capacity_ml: float = Field(12.0, gt=0.0, le=40.0)
    """Hip joint capacity before extravasation (assumption)."""
    sij_space_fill_fraction: float = Field(1.0, gt=0.0, le=1.0)
    """Share of a sacroiliac joint-space voxel the injectate occupies (assumption). The
    phantom's labelled space is thicker than the synovial cleft; 0.35 gives a longer,
    thinner joint line, but then 1 mL covers ≈ 1300 mm² on the AP and the contrast
    analyser calls the sacroiliac session's test dose soft tissue (issue 21)."""
    capsule_fill_fraction: float = Field(0.5, gt=0.0, le=1.0)
    """Share of a capsule voxel the distending joint cavity occupies (the rest is the
    capsule wall) (assumption)."""

    # --- intravascular -------------------------------------------------------------------
    arterial_velocity_mm_s: float = Field(150.0, gt=0.0, le=2000.0)
    """Blood velocity when the artery's centerline gives none (assumption)."""
    venous_velocity_mm_s: float = Field(15.0, gt=0.0, le=500.0)
    """Blood velocity in the epidural venous plexus when no centerline gives one
    (assumption: slow, valveless plexus)."""
    capillary_washout_s: float = Field(0.3, gt=0.0, le=60.0)
    """Time constant of the capillary blush where an artery ends in tissue (assumption)."""
    capillary_blood_fraction: float = Field(0.05, gt=0.0, le=0.5)
    """Share of tissue volume that is capillary blood, which holds the blush around an
    arterial end: the blush grows until it can hold the steady-state mixture (assumption)."""
    blush_max_radius_mm: float = Field(15.0, ge=0.0, le=40.0)
    """Largest blush radius around an arterial end; 0 disables the blush (assumption)."""
