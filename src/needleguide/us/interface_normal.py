"""The normal of an interface the impedance does not show: a fascia between two tissues
of equal impedance (the R_FASCIA minimum of ``kernels.propagate``, docs/us.md items 3–4)
takes its orientation from the labels, not from float rounding of the smoothed
impedance."""

from __future__ import annotations

from numba import njit

# MRayl/mm: an impedance gradient below this is float rounding of the smoothed maps, not a
# direction (the smallest real one, 0.005 MRayl over the 0.6 mm smoothing, is ≈ 1e-2)
GRAD_EPS = 1e-5


@njit(cache=True, inline="always")
def label_normal(label, l, k, lab, dr_mm, dx_mm, h):
    """The in-plane normal (axial, lateral; unnormalised) of the boundary above label
    ``lab`` at sample (l, k), for a boundary the impedance does not show (a fascia between
    tissues of equal impedance): the boundary's depth on the neighbouring lines from the
    count of ``lab`` samples within ±``h`` of k (a step at k + b leaves h + 1 − b of them),
    its slope m (mm per mm) and the normal (1, −m)."""
    L, N = label.shape
    s = 0.0
    n = 0
    for dl in (-1, 1):
        ll = l + dl
        if ll < 0 or ll >= L:
            continue
        cnt = 0
        for dk in range(-h, h + 1):
            kk = min(max(k + dk, 0), N - 1)
            if label[ll, kk] == lab:
                cnt += 1
        s += dl * (h + 1 - cnt)
        n += 1
    if n == 0:
        return 1.0, 0.0
    m = (s / n) * dr_mm / dx_mm  # boundary depth change per lateral mm
    return 1.0, -m


__all__ = ["GRAD_EPS", "label_normal"]
