"""Image-quality figures of a B-mode view at its target bone (evaluation only: they read the
true labels along the scan lines, never used by the analysers).

``target_bone_quality`` measures, in beam coordinates on the displayed grey (``img8``) and on
the envelope, around the view's target:

- ``cnr``: contrast-to-noise ratio of the bone surface echo (per line, the peak displayed
  grey within ± one axial resolution of the first bone sample) against the displayed grey
  of the soft tissue 3–10 mm above it: (mean_bone − mean_above) / sqrt(var_bone +
  var_above);
- ``contrast_db``: median over the lines of the peak bone echo intensity over the mean
  intensity of the tissue above (dB, envelope);
- ``edge_mm``: lateral 10–90 % width (mm) of the bone echo where the bone surface ends
  laterally (per line, the envelope's peak within ±2.5 mm of the depth of the last bone
  line; median over the bone ends found within ±15 mm of the target);
- ``shadow_db``: median over the lines of the mean intensity 4–12 mm below the bone surface
  (acoustic shadow: clutter and noise) re the tissue above (dB).
"""

from __future__ import annotations

import numpy as np

from needleguide import geometry
from needleguide.us import kernels as K


def _target_line(imager, ProbeToPatient: np.ndarray, target_mm: np.ndarray) -> tuple[int, float]:
    g = imager.setup.geom
    t = geometry.apply(geometry.invert(ProbeToPatient), np.asarray(target_mm, float))
    if g.kind == "linear":
        d = np.abs(g.origins[:, 0] + t[1] * g.directions[:, 0] - t[0])
        return int(np.argmin(d)), float(t[1])
    th = np.arctan2(t[0], t[1] + g.radius_mm)
    ths = np.arctan2(g.directions[:, 0], g.directions[:, 1])
    return int(np.argmin(np.abs(ths - th))), float(np.hypot(t[0], t[1] + g.radius_mm)
                                                   - g.radius_mm)


def _edge_width(profile: np.ndarray, dx_mm: float, bone_side: int) -> float:
    """10–90 % width (mm) of a step profile (bone on ``bone_side``: -1 left, +1 right)."""
    p = np.convolve(profile, np.ones(3) / 3, mode="same")
    n = len(p)
    q = max(2, n // 5)
    hi = p[:q].mean() if bone_side < 0 else p[-q:].mean()
    lo = p[-q:].mean() if bone_side < 0 else p[:q].mean()
    if hi <= lo:
        return float("nan")
    u = (p - lo) / (hi - lo)
    if bone_side < 0:
        u = u[::-1]
    # u rises from the tissue side (0) to the bone side (1): last crossings of 10 % / 90 %
    i10 = np.nonzero(u < 0.1)[0]
    i90 = np.nonzero(u < 0.9)[0]
    if len(i10) == 0 or len(i90) == 0:
        return float("nan")
    return float(max(i90[-1] - i10[-1], 0) + 1) * dx_mm


def target_bone_quality(imager, scene, ProbeToPatient: np.ndarray, target_mm: np.ndarray,
                        half_width_mm: float = 8.0) -> dict:
    """Target-detail figures (see the module docstring) of one frame at ``target_mm``."""
    bd = imager.beams(scene, ProbeToPatient)
    st = imager.setup
    g = st.geom
    dr = g.dr_mm
    L, N = bd.labels.shape
    flags = imager._flags
    bone = (flags[bd.labels] & K.FLAG_BONE) != 0
    bone[:, : int(5.0 / dr)] = False
    first = np.where(bone.any(axis=1), bone.argmax(axis=1), -1)
    l0, tdepth = _target_line(imager, ProbeToPatient, target_mm)
    kt = int(round(tdepth / dr))
    dx = float(np.interp(tdepth, st.depth_mm, st.line_dx_mm))
    hw = int(round(half_width_mm / dx))
    near = [ll for ll in range(max(l0 - hw, 0), min(l0 + hw + 1, L))
            if first[ll] >= 0 and abs(first[ll] - kt) * dr < 12.0]
    img = bd.img8.astype(np.float64)
    env2 = bd.envelope.astype(np.float64) ** 2 + 1e-30
    ax = max(1, int(round(imager.settings.n_cycles * 1.54 / imager.settings.f_mhz / 2 / dr)))
    b_px, a_px, contrast, shadow = [], [], [], []
    for ll in near:
        k = first[ll]
        a0, a1 = k - int(10.0 / dr), k - int(3.0 / dr)
        s0, s1 = k + int(4.0 / dr), min(k + int(12.0 / dr), N)
        if a0 < 0 or s1 <= s0:
            continue
        b_px.append(img[ll, k - ax:k + ax + 1].max())
        a_px.append(img[ll, a0:a1])
        above = env2[ll, a0:a1].mean()
        contrast.append(10 * np.log10(env2[ll, k - ax:k + ax + 1].max() / above))
        shadow.append(10 * np.log10(env2[ll, s0:s1].mean() / above))
    bp, ap = np.asarray(b_px), np.concatenate(a_px)
    cnr = (bp.mean() - ap.mean()) / np.sqrt(bp.var() + ap.var())
    # lateral bone ends within ±15 mm of the target: m lines with bone near the target depth
    # next to m lines without; profile: the envelope's peak within ±2.5 mm of the depth of
    # the last bone line, along the lines
    wide = int(round(15.0 / dx))
    has = np.array([first[ll] >= 0 and abs(first[ll] - kt) * dr < 12.0 for ll in range(L)])
    widths = []
    m = int(round(5.0 / dx))
    band = int(round(2.5 / dr))
    for ll in range(max(l0 - wide, m), min(l0 + wide, L - m - 1)):
        for side in (+1, -1):
            beyond = range(ll + side, ll + side * (m + 1), side)
            before = range(ll, ll - side * m, -side)
            if not (all(has[j] for j in before) and not any(has[j] for j in beyond)):
                continue
            k = first[ll]
            lines = np.sort(np.arange(ll - side * (m - 1), ll + side * (m + 1), side))
            prof = env2[lines, max(k - band, 0):k + band + 1].max(axis=1)
            widths.append(_edge_width(np.sqrt(prof), dx, -side))
    widths = [w for w in widths if np.isfinite(w)]
    return {"cnr": float(cnr), "contrast_db": float(np.median(contrast)),
            "edge_mm": float(np.median(widths)) if widths else float("nan"),
            "n_edges": len(widths), "shadow_db": float(np.median(shadow)),
            "lines": len(near), "target_depth_mm": tdepth}
