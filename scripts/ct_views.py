"""Contact sheet of a patient folder (an `import-ct` or `phantom` output) in AP, right
oblique and lateral spot images, rendered as `needleguide fluoro --patient` renders them.

    python scripts/ct_views.py DIR [DIR ...] --out sheet.png [--level L4-L5]

With ``--level`` (or when the folder lists vertebrae) the named views of that level are
used; otherwise the C-arm is centred on the volume (or ``--z-mm`` above its centre) with
the plain AP (orbit 0), 30° right oblique and lateral (orbit 90°). One row per folder.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np


def views(folder: Path, level: str | None, z_mm: float) -> list[np.ndarray]:
    from needleguide.anatomy.folder import load_patient_dir
    from needleguide.fluoro import CArm, Fluoroscope, make_settings, named_view
    from needleguide.scene import Scene

    p = load_patient_dir(folder)
    s = make_settings()
    out = []
    for name, orbit in (("ap", 0.0), ("oblique-right", 30.0), ("lateral", 90.0)):
        if level:
            carm = named_view(p, name, level, geometry_=s.geometry)
        else:
            lo, hi = p.bounds_mm()
            c = (lo + hi) / 2 + np.array([0.0, 0.0, z_mm])
            carm = CArm(isocenter_mm=tuple(c), orbit_deg=orbit, tilt_deg=0.0,
                        geometry=s.geometry)
        fl = Fluoroscope(p, s, seed=0, carm=carm)
        out.append(np.clip(fl.frame(Scene(p), "spot", carm).pixels, 0, 1))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("folders", nargs="+", type=Path)
    ap.add_argument("--level", default=None)
    ap.add_argument("--z-mm", type=float, default=0.0)
    ap.add_argument("--scale", type=int, default=2, help="downsampling factor of the sheet")
    ap.add_argument("--out", type=Path, required=True)
    a = ap.parse_args()
    import imageio.v2 as imageio

    rows = [np.concatenate(views(f, a.level, a.z_mm), axis=1)[:: a.scale, :: a.scale]
            for f in a.folders]
    imageio.imwrite(a.out, (np.concatenate(rows, axis=0) * 255).astype(np.uint8))
    print(f"wrote {a.out}: rows {', '.join(map(str, a.folders))}; columns AP, right "
          f"oblique 30°, lateral")


if __name__ == "__main__":
    main()
