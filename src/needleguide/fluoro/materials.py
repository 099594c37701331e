"""X-ray materials: elemental compositions and mass attenuation μ/ρ(E) from xraydb.

xraydb ships elements, not tissues, so tissues are defined by mass fraction (ICRU Report
44 / Woodard & White 1986, as tabulated by NIST) and μ/ρ is the fraction-weighted sum of
xraydb's ``mu_elam(element, E, kind='total')`` (photo + coherent + incoherent), in cm²/g.

Material keys are those of the tissue table's ``material`` column plus the imager's own
(iodine, stainless steel, polycarbonate hub, aluminium / copper filters, caesium iodide).
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from needleguide.errors import UserError

# key -> (mass fractions by element, nominal density g/cm³, source)
COMPOSITIONS: dict[str, tuple[dict[str, float], float, str]] = {
    "water": ({"H": 0.1119, "O": 0.8881}, 1.00, "H2O"),
    "air": ({"C": 0.000124, "N": 0.755268, "O": 0.231781, "Ar": 0.012827}, 0.001205,
            "dry air near sea level (NIST)"),
    "soft_tissue": ({"H": 0.102, "C": 0.143, "N": 0.034, "O": 0.708, "Na": 0.002, "P": 0.003,
                     "S": 0.003, "Cl": 0.002, "K": 0.003}, 1.06, "ICRU-44 soft tissue"),
    "adipose": ({"H": 0.114, "C": 0.598, "N": 0.007, "O": 0.278, "Na": 0.001, "S": 0.001,
                 "Cl": 0.001}, 0.95, "ICRU-44 adipose tissue"),
    "muscle": ({"H": 0.102, "C": 0.143, "N": 0.034, "O": 0.710, "Na": 0.001, "P": 0.002,
                "S": 0.003, "Cl": 0.001, "K": 0.004}, 1.05, "ICRU-44 skeletal muscle"),
    "skin": ({"H": 0.100, "C": 0.204, "N": 0.042, "O": 0.645, "Na": 0.002, "P": 0.001,
              "S": 0.002, "Cl": 0.003, "K": 0.001}, 1.09, "ICRU-44 skin"),
    "blood": ({"H": 0.102, "C": 0.110, "N": 0.033, "O": 0.745, "Na": 0.001, "P": 0.001,
               "S": 0.002, "Cl": 0.003, "K": 0.002, "Fe": 0.001}, 1.06, "ICRU-44 blood"),
    "cartilage": ({"H": 0.096, "C": 0.099, "N": 0.022, "O": 0.744, "Na": 0.005, "P": 0.022,
                   "S": 0.009, "Cl": 0.003}, 1.10, "ICRU-44 cartilage"),
    "csf": ({"H": 0.111, "O": 0.880, "Na": 0.005, "Cl": 0.004}, 1.007,
            "cerebrospinal fluid (ICRU-46)"),
    "cortical_bone": ({"H": 0.034, "C": 0.155, "N": 0.042, "O": 0.435, "Na": 0.001,
                       "Mg": 0.002, "P": 0.103, "S": 0.003, "Ca": 0.225}, 1.92,
                      "ICRU-44 cortical bone"),
    "cancellous_bone": ({"H": 0.085, "C": 0.404, "N": 0.028, "O": 0.367, "Na": 0.001,
                         "Mg": 0.001, "P": 0.034, "S": 0.002, "Cl": 0.002, "K": 0.001,
                         "Ca": 0.074, "Fe": 0.001}, 1.18, "spongiosa (ICRU-46)"),
    "iodine": ({"I": 1.0}, 4.93, "element"),
    "steel": ({"Fe": 0.6942, "Cr": 0.19, "Ni": 0.0925, "Mn": 0.015, "Si": 0.0075,
               "C": 0.0008}, 8.0, "stainless steel AISI 304"),
    "polycarbonate": ({"H": 0.055, "C": 0.756, "O": 0.189}, 1.20,
                      "polycarbonate C16H14O3 (needle hub)"),
    "carbon_fibre": ({"C": 0.90, "H": 0.02, "O": 0.08}, 1.55,
                     "carbon-fibre/epoxy composite (table top, *assumption*: 90 % C)"),
    "aluminium": ({"Al": 1.0}, 2.699, "element"),
    "copper": ({"Cu": 1.0}, 8.96, "element"),
    "csi": ({"Cs": 0.5115, "I": 0.4885}, 4.51, "CsI scintillator"),
}


def known_materials() -> list[str]:
    """All material keys this module can compute."""
    return sorted(COMPOSITIONS)


def density_g_cm3(material: str) -> float:
    """Nominal density (g/cm³) of ``material``."""
    return _lookup(material)[1]


def _lookup(material: str) -> tuple[dict[str, float], float, str]:
    if material not in COMPOSITIONS:
        raise UserError(f"material: unknown X-ray material {material!r}; choose one of: "
                        f"{', '.join(known_materials())}")
    return COMPOSITIONS[material]


@lru_cache(maxsize=256)
def _mu_rho_cached(material: str, energies: tuple[float, ...]) -> np.ndarray:
    import xraydb

    fractions, _, _ = _lookup(material)
    e_ev = np.asarray(energies, dtype=float) * 1000.0
    total = sum(fractions.values())
    out = np.zeros(len(energies))
    for element, w in fractions.items():
        out += (w / total) * np.asarray(xraydb.mu_elam(element, e_ev, kind="total"), float)
    out.setflags(write=False)
    return out


def mass_attenuation(material: str, energies_kev) -> np.ndarray:
    """μ/ρ (cm²/g) of ``material`` at ``energies_kev`` (scalar or array, keV)."""
    e = np.atleast_1d(np.asarray(energies_kev, dtype=float))
    out = _mu_rho_cached(material, tuple(np.round(e, 6).tolist())).copy()
    return out if np.ndim(energies_kev) else out[:1].reshape(())


def linear_attenuation(material: str, energies_kev, density: float | None = None) -> np.ndarray:
    """μ (1/cm) of ``material`` at ``density`` (g/cm³, default the nominal one)."""
    rho = density_g_cm3(material) if density is None else float(density)
    return mass_attenuation(material, energies_kev) * rho


def basis_decomposition(material: str, energies_kev, weights=None,
                        basis: tuple[str, str] = ("soft_tissue", "cortical_bone")
                        ) -> tuple[float, float]:
    """Coefficients (a, b) with μ/ρ_material(E) ≈ a·μ/ρ_basis0(E) + b·μ/ρ_basis1(E),
    least squares over ``energies_kev`` weighted by ``weights`` (e.g. a spectrum).

    Per gram of ``material``, a grams of basis 0 and b grams of basis 1 attenuate alike;
    this is how each tissue becomes two areal densities for the beam-hardening table.
    """
    e = np.asarray(energies_kev, dtype=float)
    w = np.ones_like(e) if weights is None else np.asarray(weights, dtype=float)
    w = np.sqrt(np.maximum(w, 0.0) / max(float(np.max(w)), 1e-30))
    m = mass_attenuation(material, e)
    a0 = mass_attenuation(basis[0], e)
    a1 = mass_attenuation(basis[1], e)
    # relative error: divide rows by the material's own μ/ρ
    A = np.column_stack([a0, a1]) * (w / m)[:, None]
    coef, *_ = np.linalg.lstsq(A, w, rcond=None)
    return float(coef[0]), float(coef[1])
