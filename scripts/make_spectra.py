"""Generate the X-ray tube spectra table shipped with the fluoroscopy imager.

Run offline (spekpy is NOT a runtime dependency; ``pip install spekpy`` first)::

    python scripts/make_spectra.py

Writes ``src/needleguide/fluoro/data/spectra.npz``: tungsten anode, 12° anode angle,
2.5 mm Al inherent filtration, 60–120 kVp in 1 kVp steps, 1 keV bins (mid-bin energies
0.5–119.5 keV). Stored per kVp: photon fluence per mAs at 1 m (photons / cm² / mAs per
bin), the spekpy air kerma (µGy/mAs at 1 m) and first HVL (mm Al) as checks, and the air
μen/ρ (cm²/g, spekpy's NIST table) per bin so that the imager computes air kerma of any
filtered / attenuated spectrum consistently. Extra filtration (Al, Cu) is applied at run
time with xraydb μ (see ``needleguide.fluoro.spectra``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

OUT = Path(__file__).resolve().parents[1] / "src/needleguide/fluoro/data/spectra.npz"
ANODE_ANGLE_DEG = 12.0
INHERENT_AL_MM = 2.5
KVPS = np.arange(60, 121, 1)
DK = 1.0
NBINS = 120  # mid-bin energies 0.5 .. 119.5 keV


def main() -> None:
    import spekpy

    energies = np.arange(NBINS) * DK + DK / 2
    fluence = np.zeros((len(KVPS), NBINS), dtype=np.float64)
    kerma = np.zeros(len(KVPS))
    hvl = np.zeros(len(KVPS))
    emean = np.zeros(len(KVPS))
    muen_air = None
    for i, kvp in enumerate(KVPS):
        s = spekpy.Spek(kvp=float(kvp), th=ANODE_ANGLE_DEG, targ="W", dk=DK)
        s.filter("Al", INHERENT_AL_MM)
        k, phi = s.get_spectrum(edges=False)  # photons / cm² / keV / mAs at 1 m
        idx = np.rint((k - DK / 2) / DK).astype(int)
        fluence[i, idx] = phi * DK
        kerma[i] = s.get_kerma()
        hvl[i] = s.get_hvl1()
        emean[i] = s.get_emean()
        if muen_air is None:
            muen_air = np.asarray(s.muen_air_data.get_muen_over_rho_air(np.maximum(energies, 1.0)))
        print(f"{kvp} kVp: {kerma[i]:.2f} µGy/mAs at 1 m, HVL {hvl[i]:.2f} mm Al, "
              f"mean {emean[i]:.1f} keV")
    OUT.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(
        OUT,
        kvp=KVPS.astype(np.float64),
        energies_kev=energies,
        fluence_per_mas_1m=fluence.astype(np.float32),
        kerma_ugy_per_mas_1m=kerma,
        hvl1_mm_al=hvl,
        mean_energy_kev=emean,
        muen_air_cm2_g=np.asarray(muen_air, dtype=np.float64),
        inherent_al_mm=np.float64(INHERENT_AL_MM),
        anode_angle_deg=np.float64(ANODE_ANGLE_DEG),
        source=np.array(f"spekpy {spekpy.__version__ if hasattr(spekpy, '__version__') else ''}"
                        f" W {ANODE_ANGLE_DEG}° + {INHERENT_AL_MM} mm Al"),
    )
    print(f"wrote {OUT} ({OUT.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
