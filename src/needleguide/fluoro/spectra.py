"""X-ray tube spectra: the shipped spekpy table (``data/spectra.npz``) plus run-time filtration.

The table (made by ``scripts/make_spectra.py`` with spekpy 2.5.4) holds tungsten-anode
spectra (12° anode angle, 2.5 mm Al inherent filtration) for 60–120 kVp in 1 keV bins, as
photon fluence per mAs at 1 m. Added filtration (mm Al, mm Cu) is applied here with xraydb
μ; air kerma is Σ φ(E)·E·μen/ρ_air(E) with spekpy's NIST μen/ρ of air, so it is consistent
for any filtered or patient-attenuated spectrum.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from importlib import resources

import numpy as np

from needleguide.errors import check_range
from needleguide.fluoro.materials import linear_attenuation

KEV_TO_J = 1.602176634e-16
KVP_RANGE = (60.0, 120.0)


@lru_cache(maxsize=1)
def _table() -> dict[str, np.ndarray]:
    path = resources.files("needleguide.fluoro") / "data" / "spectra.npz"
    with resources.as_file(path) as p, np.load(p) as z:
        return {k: np.asarray(z[k]) for k in z.files}


def kerma_per_fluence_ugy(energies_kev: np.ndarray) -> np.ndarray:
    """Air kerma (µGy) per photon/cm² at each energy: E·μen/ρ_air (J/kg → µGy)."""
    t = _table()
    mu_en = np.interp(energies_kev, t["energies_kev"], t["muen_air_cm2_g"])
    # photons/cm² × keV × cm²/g → keV/g; × J/keV × 1000 g/kg → Gy; × 1e6 → µGy
    return energies_kev * mu_en * KEV_TO_J * 1000.0 * 1e6


@dataclass(frozen=True)
class Spectrum:
    """A filtered tube spectrum: energies (keV, bin centres, 1 keV bins) and photon
    fluence per mAs at 1 m from the focal spot (photons/cm² per bin)."""

    kvp: float
    added_al_mm: float
    added_cu_mm: float
    energies_kev: np.ndarray
    fluence_per_mas_1m: np.ndarray

    @property
    def total_al_mm(self) -> float:
        return float(_table()["inherent_al_mm"]) + self.added_al_mm

    def kerma_ugy_per_mas_1m(self) -> float:
        """Air kerma free in air, µGy per mAs at 1 m (the tube output)."""
        return float(np.sum(self.fluence_per_mas_1m * kerma_per_fluence_ugy(self.energies_kev)))

    def photons_per_mm2_per_ugy(self) -> float:
        """Photon fluence per unit air kerma (photons/mm²/µGy) of this (unattenuated) beam."""
        return float(self.fluence_per_mas_1m.sum() / 100.0 / self.kerma_ugy_per_mas_1m())

    def mean_energy_kev(self) -> float:
        w = self.fluence_per_mas_1m
        return float(np.sum(w * self.energies_kev) / np.sum(w))

    def hvl_mm_al(self) -> float:
        """First half-value layer (mm Al) from air kerma, by bisection."""
        kpf = kerma_per_fluence_ugy(self.energies_kev) * self.fluence_per_mas_1m
        mu = linear_attenuation("aluminium", np.maximum(self.energies_kev, 1.0)) / 10.0  # 1/mm
        k0 = kpf.sum()
        lo, hi = 0.0, 50.0
        for _ in range(60):
            mid = 0.5 * (lo + hi)
            if np.sum(kpf * np.exp(-mu * mid)) > 0.5 * k0:
                lo = mid
            else:
                hi = mid
        return 0.5 * (lo + hi)

    def compressed(self, max_bins: int = 40, min_fraction: float = 1e-5) -> Spectrum:
        """Same spectrum on fewer, wider bins (fluence-weighted mean energies), dropping bins
        below ``min_fraction`` of the total: for the per-pixel exact polyenergetic sum."""
        e, w = self.energies_kev, self.fluence_per_mas_1m
        keep = w > min_fraction * w.sum()
        e, w = e[keep], w[keep]
        n = min(max_bins, len(e))
        groups = np.array_split(np.arange(len(e)), n)
        ce = np.array([np.sum(e[g] * w[g]) / max(np.sum(w[g]), 1e-30) for g in groups])
        cw = np.array([np.sum(w[g]) for g in groups])
        return Spectrum(self.kvp, self.added_al_mm, self.added_cu_mm, ce, cw)


def tube_spectrum(kvp: float, added_al_mm: float = 0.5, added_cu_mm: float = 0.1) -> Spectrum:
    """Spectrum at ``kvp`` (60–120, linear interpolation between 1 kVp table entries) with
    ``added_al_mm`` / ``added_cu_mm`` filtration on top of the 2.5 mm Al inherent.

    Default 0.5 mm Al + 0.1 mm Cu added = 3 mm Al + 0.1 mm Cu total, the fluoroscopy
    spectral filtration quoted in PHYSICS.md (*assumption*: model-specific in practice).
    """
    kvp = check_range("kVp", kvp, *KVP_RANGE, " kVp")
    check_range("filtration added_al_mm", added_al_mm, 0.0, 10.0, " mm")
    check_range("filtration added_cu_mm", added_cu_mm, 0.0, 1.0, " mm")
    return _spectrum_cached(round(kvp, 4), round(added_al_mm, 4), round(added_cu_mm, 4))


@lru_cache(maxsize=64)
def _spectrum_cached(kvp: float, al: float, cu: float) -> Spectrum:
    t = _table()
    kv = t["kvp"]
    i = int(np.clip(np.searchsorted(kv, kvp) - 1, 0, len(kv) - 2))
    f = (kvp - kv[i]) / (kv[i + 1] - kv[i])
    phi = (1 - f) * t["fluence_per_mas_1m"][i].astype(float) \
        + f * t["fluence_per_mas_1m"][i + 1].astype(float)
    e = t["energies_kev"].astype(float)
    phi = np.where(e < kvp, phi, 0.0)
    ee = np.maximum(e, 1.0)
    att = (linear_attenuation("aluminium", ee) * al / 10.0
           + linear_attenuation("copper", ee) * cu / 10.0)
    phi = phi * np.exp(-att)
    phi[phi < 1e-12 * phi.max()] = 0.0
    phi.setflags(write=False)
    return Spectrum(kvp, al, cu, e, phi)


def table_info() -> dict[str, float | str]:
    """Provenance of the shipped table (for frame settings and docs)."""
    t = _table()
    return {"source": str(t["source"]), "inherent_al_mm": float(t["inherent_al_mm"]),
            "anode_angle_deg": float(t["anode_angle_deg"])}
