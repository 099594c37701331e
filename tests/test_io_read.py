"""Real scanner files in: DICOM ultrasound (every photometric interpretation and the usual
compressions, from the public pydicom test sets), X-ray magnification, videos and PNG
sequences, and the screen reader (imaging area, graphics) that keeps text, calipers,
colour and boxes out of the analysis."""

from __future__ import annotations

import json

import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file
from pydicom.dataset import FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from needleguide.cli import main
from needleguide.guidance.analyse import analyse_frame
from needleguide.io.dicom_in import read_dicom
from needleguide.io.frames import frames_of, read_sources
from needleguide.io.screen import graphics_mask, imaging_mask

pytest.importorskip("data_store", reason="pydicom-data (the public DICOM test set)")

# public ultrasound test files: (name, photometric interpretation, frames, B-mode spacing mm
# in cm, as the file's Sequence of Ultrasound Regions gives it, or None)
REAL_US = [
    ("examples_palette.dcm", "PALETTE COLOR", 1, 0.02622878766196998),
    ("examples_ybr_color.dcm", "YBR_FULL_422", 30, None),  # regions for another size
    ("examples_rgb_color.dcm", "RGB", 1, None),
    ("US1_J2KR.dcm", "YBR_RCT", 1, None),  # JPEG 2000 lossless
    ("US1_J2KI.dcm", "YBR_ICT", 1, None),  # JPEG 2000 lossy
    ("US1_UNCR.dcm", "RGB", 1, None),
    ("gdcm-US-ALOKA-16.dcm", "PALETTE COLOR", 1, 0.03826530650258064),  # 16-bit palette
    ("JPGLosslessP14SV1_1s_1f_8b.dcm", "MONOCHROME2", 1, 0.025476696592378157),  # JPEG LL
    ("OBXXXX1A_rle_2frame.dcm", "PALETTE COLOR", 2, 0.02622878766196998),  # RLE
    ("color3d_jpeg_baseline.dcm", "YBR_FULL_422", 120, 0.05104970559477806),  # JPEG cine
    ("color-pl.dcm", "RGB", 1, None),
]
# one file per distinct image (the US1_* files are one image in three encodings)
DISTINCT = [x[0] for x in REAL_US if x[0] not in ("US1_J2KI.dcm", "US1_UNCR.dcm")]


def _path(name: str) -> str:
    return get_testdata_file(name)


@pytest.mark.parametrize("name,pi,n,spacing", REAL_US)
def test_real_ultrasound_files_decode_with_their_calibration(name, pi, n, spacing):
    src = read_dicom(__import__("pathlib").Path(_path(name)))
    assert pydicom.dcmread(_path(name)).PhotometricInterpretation == pi
    assert src.modality == "us" and src.pixels.shape[0] == n
    assert src.pixels.dtype == np.uint8 and src.pixels.shape[-1] in (3,) + src.pixels.shape[2:3]
    assert src.regions
    if spacing is not None:  # calibration read exactly, in mm
        assert all(r.spacing_source == "calibrated" for r in src.regions)
        assert all(r.spacing_mm == pytest.approx((10 * spacing, 10 * spacing), rel=1e-12)
                   for r in src.regions)
    else:
        assert all(r.spacing_source == "assumed" for r in src.regions)
        assert any("assumed" in note for note in src.notes)


def test_dual_view_gives_two_areas_and_each_is_inside_its_region():
    src = read_dicom(__import__("pathlib").Path(_path("gdcm-US-ALOKA-16.dcm")))
    boxes = [r.area.box for r in src.regions]
    assert len(boxes) == 2
    assert boxes[0][2] <= 335 < 336 <= boxes[1][0]


def test_needle_false_positives_on_real_screens_at_most_1_percent():
    """Full screens (text, calipers, colour flow, boxes, colour bars) from the public test
    sets (pydicom, pydicom-data): no needle in any of them (measured: 1 of 159 frames, a
    cardiac septum read at the assumed spacing)."""
    n = found = 0
    for src in read_sources([_path(x) for x in DISTINCT])[0]:
        for f in frames_of(src):
            res, _ = analyse_frame(f.frame, draw=False)
            n += 1
            found += res["needle"]["found"]
    assert n >= 150
    assert found <= 0.01 * n, f"{found} of {n} frames"


def test_screen_reader_finds_the_sector_and_marks_text_and_colour():
    from needleguide.io.dicom_in import _decode

    ds = pydicom.dcmread(_path("US1_UNCR.dcm"))
    screen = _decode(ds, None)[0]
    areas = imaging_mask(screen)
    assert len(areas) == 1
    a = areas[0]
    # the B-mode lies between the header text (rows < 100) and the caption (row ~ 370)
    assert 95 <= a.y0 <= 125 and 320 <= a.y1 <= 345
    crop = screen[a.y0:a.y1 + 1, a.x0:a.x1 + 1]
    g = graphics_mask(crop)
    col = (crop.max(axis=2).astype(int) - crop.min(axis=2)) > 60
    assert g[col].mean() > 0.99  # colour flow and colour bars are not anatomy
    # the colour-flow boxes' outlines (white, 1 px) are marked
    box_rows = [148 - a.y0, 294 - a.y0]
    assert all(g[r, 100 - a.x0:300 - a.x0].mean() > 0.9 for r in box_rows)
    assert g.mean() < 0.35


def _xa(tmp_path, **tags):
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.12.1"
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = pydicom.Dataset()
    ds.file_meta = meta
    ds.Modality = "XA"
    ds.Rows = ds.Columns = 64
    ds.SamplesPerPixel, ds.BitsAllocated, ds.BitsStored, ds.HighBit = 1, 16, 12, 11
    ds.PixelRepresentation = 0
    ds.NumberOfFrames = 3
    ds.PhotometricInterpretation = "MONOCHROME2"
    for k, v in tags.items():
        setattr(ds, k, v)
    ds.PixelData = (np.arange(3 * 64 * 64, dtype=np.uint16) % 4000).tobytes()
    p = tmp_path / "xa.dcm"
    ds.save_as(p, enforce_file_format=True)
    return p


def test_xa_spacing_is_imager_spacing_over_the_magnification(tmp_path):
    p = _xa(tmp_path, ImagerPixelSpacing=[0.3, 0.3], DistanceSourceToDetector=1000,
            DistanceSourceToPatient=750)
    src = read_dicom(p)
    assert src.modality == "fluoro" and src.pixels.shape == (3, 64, 64)
    assert src.regions[0].spacing_mm == pytest.approx((0.225, 0.225))
    assert src.regions[0].spacing_source == "imager spacing / magnification"
    assert 0.0 <= src.pixels.min() and src.pixels.max() <= 1.0


def test_xa_without_spacing_asks_for_it(tmp_path, capsys):
    p = _xa(tmp_path)
    assert main(["analyse", str(p)]) == 2
    assert "--spacing" in capsys.readouterr().err
    assert main(["analyse", str(p), "--spacing", "0.4", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert [f["frame"] for f in out["frames"]] == [0, 1, 2]
    assert all(f["spacing_source"] == "given" for f in out["frames"])


def test_compressed_variants_read_the_same_pixels(tmp_path):
    """JPEG-LS and RLE re-encodings of a real grey ultrasound read back identically."""
    from pydicom.uid import JPEGLSLossless, RLELossless

    ds = pydicom.dcmread(_path("JPGLosslessP14SV1_1s_1f_8b.dcm"))
    ref = read_dicom(__import__("pathlib").Path(_path("JPGLosslessP14SV1_1s_1f_8b.dcm")))
    for ts in (JPEGLSLossless, RLELossless):
        d2 = pydicom.dcmread(_path("JPGLosslessP14SV1_1s_1f_8b.dcm"))
        d2.compress(ts, ds.pixel_array)
        p = tmp_path / f"{ts.name[:8].replace(' ', '_')}.dcm"
        d2.save_as(p, enforce_file_format=True)
        got = read_dicom(p)
        assert np.array_equal(got.pixels, ref.pixels)
        assert got.regions[0].area.box == ref.regions[0].area.box


def test_video_and_png_sequence_with_spacing(tmp_path, capsys):
    import imageio.v2 as imageio

    ds = pydicom.dcmread(_path("examples_ybr_color.dcm"))
    frames = ds.pixel_array[:8]
    vid = tmp_path / "clip.mp4"
    w = imageio.get_writer(vid, fps=10, codec="libx264", quality=8, macro_block_size=2,
                           format="FFMPEG")
    for f in frames:
        w.append_data(f)
    w.close()
    avi = tmp_path / "clip.avi"  # AVI (Motion JPEG) through the same reader
    w = imageio.get_writer(avi, fps=10, codec="mjpeg", macro_block_size=2, format="FFMPEG")
    for f in frames[:3]:
        w.append_data(f)
    w.close()
    seq = tmp_path / "seq"
    seq.mkdir()
    for i, f in enumerate(frames[:4]):
        imageio.imwrite(seq / f"f{i:03d}.png", f)
    assert main(["analyse", str(vid), str(avi), str(seq), "--spacing", "0.5", "--modality",
                 "us", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    files = [f["file"] for f in out["frames"]]
    assert files.count("clip.mp4") == 8 and files.count("seq") == 4
    assert files.count("clip.avi") == 3
    assert all(f["spacing_mm"] == [0.5, 0.5] and f["spacing_source"] == "given"
               for f in out["frames"])
    boxes = {tuple(f["region"]["box"]) for f in out["frames"]}
    assert all(b[2] - b[0] < 300 for b in boxes)  # the sector, not the whole screen
    assert main(["analyse", str(vid), "--json"]) == 0  # no --spacing: assumed, said so
    out = json.loads(capsys.readouterr().out)
    assert out["notes"] and "assumed" in out["notes"][0]
