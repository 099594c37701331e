"""Contact sheet of the screen reader on real ultrasound screens (pydicom-data): each
screen with its imaging areas (green) and what is blacked out as graphics inside them
(red). Writes docs/img/screen_reader.png.

    python scripts/screen_reader_sheet.py [--out docs/img/screen_reader.png]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np

FILES = ["JPGLosslessP14SV1_1s_1f_8b.dcm", "US1_UNCR.dcm", "gdcm-US-ALOKA-16.dcm",
         "OBXXXX1A_2frame.dcm", "color3d_jpeg_baseline.dcm", "examples_ybr_color.dcm"]
TILE = (400, 300)  # width, height of each tile


def tile(name: str) -> np.ndarray:
    from pydicom.data import get_testdata_file

    from needleguide.io.dicom_in import read_dicom
    from needleguide.io.screen import graphics_mask

    src = read_dicom(Path(get_testdata_file(name)))
    px = src.pixels[0]
    rgb = px.copy() if px.ndim == 3 else np.repeat(px[..., None], 3, axis=2)
    for r in src.regions:
        a = r.area
        crop = px[a.y0:a.y1 + 1, a.x0:a.x1 + 1]
        g = graphics_mask(crop) & a.mask
        sub = rgb[a.y0:a.y1 + 1, a.x0:a.x1 + 1]
        sub[~a.mask] = (sub[~a.mask] * 0.35).astype(np.uint8)
        sub[g] = (255, 40, 40)
        cv2.rectangle(rgb, (a.x0, a.y0), (a.x1, a.y1), (40, 255, 40), 2)
    h, w = rgb.shape[:2]
    k = min(TILE[0] / w, TILE[1] / h)
    small = cv2.resize(rgb, (int(w * k), int(h * k)), interpolation=cv2.INTER_AREA)
    out = np.zeros((TILE[1] + 22, TILE[0], 3), np.uint8)
    out[22:22 + small.shape[0], :small.shape[1]] = small
    sp = src.regions[0]
    cv2.putText(out, f"{name[:28]}  {sp.spacing_mm[0]:.3f} mm/px {sp.spacing_source}",
                (4, 15), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (255, 255, 255), 1, cv2.LINE_AA)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path("docs/img/screen_reader.png"))
    a = ap.parse_args()
    import imageio.v2 as imageio

    tiles = [tile(n) for n in FILES]
    rows = [np.concatenate(tiles[i:i + 3], axis=1) for i in range(0, len(tiles), 3)]
    imageio.imwrite(a.out, np.concatenate(rows, axis=0))
    print(a.out)


if __name__ == "__main__":
    main()
