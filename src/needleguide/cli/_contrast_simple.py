"""The ``--renderer simple`` stand-in of ``needleguide contrast``: parallel-beam AP and
lateral Beer–Lambert projections at an effective 60 keV (μ/ρ from PHYSICS.md) with Poisson
noise, in either display polarity."""

from __future__ import annotations

#: μ/ρ (cm²/g) at 60 keV, PHYSICS.md (water, ICRU-44 soft tissue and cortical bone,
#: stainless steel); adipose and cancellous bone are *assumptions* for the display.
MU_RHO_60KEV = {"air": 0.0, "adipose": 0.200, "skin": 0.205, "muscle": 0.205,
                "soft_tissue": 0.205, "blood": 0.206, "csf": 0.206, "water": 0.206,
                "cartilage": 0.210, "cancellous_bone": 0.260, "cortical_bone": 0.315,
                "steel": 1.19}
IODINE_MU_PER_MG_ML_MM = 7.58e-4  # 1/mm per mg I/mL at 60 keV (7.58 cm²/g)
PHOTONS_PER_PIXEL = 3000.0  # behind the patient, per 1 mm² pixel and frame: ≈ 0.1 µGy
# (1.5 µGy/s at 15 pulses/s, 3.1e4 photons/mm²/µGy; PHYSICS.md), held by the AEC at the
# median path of the mask frame


class SimpleRenderer:
    """The parallel-beam stand-in (:class:`Projector`) behind the renderer interface."""

    def __init__(self, patient, injectate, needle, tip_mm, level: str, seed: int,
                 display: str = "black-bone"):
        import numpy as np

        self.name = f"parallel-beam 60 keV Beer-Lambert stand-in, {display} display"
        self.proj = Projector(patient, tip_mm, level, needle)
        self.injectate = injectate
        self.rng = np.random.default_rng(seed)
        self.white = display == "white-bone"

    def live(self, view: str, t_s: float):
        line = self.proj.live(view, self.injectate.iodine_mg_ml(t_s), self.rng)
        img = self.proj.display(line, view)
        return 255 - img if self.white else img

    def dsa(self, view: str, t_s: float):
        line = self.proj.live(view, self.injectate.iodine_mg_ml(t_s), self.rng)
        img = self.proj.dsa(line, self.proj.mask_frame(view))
        return 255 - img if self.white else img

    def crop(self, view: str, field=None):
        return slice(None), slice(None)


class Projector:
    """Parallel-beam AP (through y) and lateral (through x) projections of the anatomy
    around the level, plus the needle and the iodine."""

    def __init__(self, patient, tip_mm, level: str, needle, spacing_mm: float = 1.0,
                 size_mm=(120.0, 150.0, 130.0)):
        import numpy as np

        from needleguide.scene.injectate.grid import LocalGrid

        names = [n for n in level.split("-") if n in patient.vertebrae]
        center = np.mean([patient.vertebrae[n].center_mm for n in names], axis=0) \
            if names else np.asarray(tip_mm, float)
        self.grid = LocalGrid.around(center, size_mm, spacing_mm)
        labels = self.grid.labels(patient)
        mu = np.zeros(256)
        for t in patient.tissues:
            mu[t.label] = MU_RHO_60KEV.get(t.material, 0.205) * t.density_g_cm3 / 10.0
        vol = mu[labels]
        h = spacing_mm
        self.base = {"ap": vol.sum(axis=1) * h, "lateral": vol.sum(axis=0) * h}
        back = -np.asarray(needle.direction, float)
        pts = np.asarray(tip_mm, float) + np.arange(0.0, needle.inserted_length_mm, 0.25)[
            :, None] * back
        flat, inside = self.grid.flat_of(pts)
        ijk = np.stack(np.unravel_index(flat[inside], self.grid.shape), axis=1)
        self.needle = {}
        od = needle.outer_diameter_mm
        steel = MU_RHO_60KEV["steel"] * 8.0 / 10.0 * od * np.pi / 4  # μ × mean chord (mm)
        for v, (a, b) in {"ap": (0, 2), "lateral": (1, 2)}.items():
            img = np.zeros(self.base[v].shape)
            img[ijk[:, a], ijk[:, b]] = steel
            self.needle[v] = img

    def iodine(self, view: str, field):
        import numpy as np

        img = np.zeros(self.base[view].shape)
        if field is None:
            return img
        g, h = self.grid, self.grid.spacing_mm
        off = np.rint(field.VoxelToPatient[:3, 3] / h).astype(int) - np.array(g.lo)
        lo = np.maximum(off, 0)
        hi = np.minimum(off + np.array(field.values.shape), np.array(g.shape))
        if np.any(hi <= lo):
            return img
        sub = field.values[tuple(slice(a - o, b - o) for a, b, o in zip(lo, hi, off,
                                                                          strict=True))]
        ax = 1 if view == "ap" else 0
        keep = [0, 2] if view == "ap" else [1, 2]
        proj = sub.sum(axis=ax) * h * IODINE_MU_PER_MG_ML_MM
        img[lo[keep[0]]:hi[keep[0]], lo[keep[1]]:hi[keep[1]]] += proj
        return img

    def mask_frame(self, view: str):
        """Noise-free mask (line integral) before contrast, for subtraction."""
        return self.base[view] + self.needle[view]

    def live(self, view: str, field, rng):
        """Noisy line integral −ln(N/N0) of one live frame (N0 set by the AEC)."""
        import numpy as np

        mask = self.mask_frame(view)
        ref = float(np.median(mask))
        line = mask + self.iodine(view, field)
        n = rng.poisson(PHOTONS_PER_PIXEL * np.exp(-(line - ref)))
        return ref - np.log(np.maximum(n, 0.5) / PHOTONS_PER_PIXEL)

    def display(self, line, view: str):
        """uint8 image, rows = superior up, attenuation dark (fluoroscopy convention);
        AP: patient right on the image left; lateral: anterior on the image left."""
        import numpy as np

        img = np.fliplr(np.flipud(line.T))  # (z, x|y), superior up, flipped columns
        lo, hi = np.percentile(self.mask_frame(view), [1, 99.5])
        g = 1.0 - np.clip((img - lo) / (hi - lo + 1e-9), 0, 1)
        return (255 * g).astype(np.uint8)

    @staticmethod
    def dsa(line, mask):
        """Log-subtracted frame: iodine dark on mid-grey."""
        import numpy as np

        d = np.fliplr(np.flipud((line - mask).T))
        return (255 * np.clip(0.6 * np.exp(-d / 0.8), 0, 1)).astype(np.uint8)
