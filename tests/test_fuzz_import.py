"""Fuzzing the import path (hypothesis): NIfTI and DICOM CTs, label maps and patient folders
built from random headers, geometry, ids and JSON, or with random bytes changed. Whatever
comes in, nothing may come out but a result or our own clear error (:class:`UserError`).

Bounded for CI: ``NEEDLEGUIDE_FUZZ_EXAMPLES`` examples per reader (default 600; about 20 s
in all on 2 cores), derandomized so that CI runs the same cases every time;
``NEEDLEGUIDE_FUZZ_RANDOM=1`` explores new ones (e.g. ``NEEDLEGUIDE_FUZZ_EXAMPLES=2000``).
"""

from __future__ import annotations

import gzip
import json
import os
import shutil
import tempfile
import traceback
import warnings
from collections.abc import Callable
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydicom.dataset import FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian

from needleguide.anatomy.folder import load_patient_dir
from needleguide.anatomy.importer import import_ct, read_ct
from needleguide.errors import UserError

EXAMPLES = int(os.environ.get("NEEDLEGUIDE_FUZZ_EXAMPLES", "600"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None,
                derandomize=os.environ.get("NEEDLEGUIDE_FUZZ_RANDOM") != "1", database=None,
                suppress_health_check=list(HealthCheck))
RUNS: dict[str, list[str]] = {}


#: failures this harness found in the importer modules (owned by another engineer, not
#: editable here): reported with these signatures; counted and printed, not hidden.
#: (file, function(s), exception type or "pydicom" for one raised inside pydicom, text in
#: its message) -> what is wrong
KNOWN: dict[tuple[str, str, str, str], str] = {}  # reported bugs, all fixed since


def _known(e: BaseException) -> str | None:
    frames = [f for f in traceback.extract_tb(e.__traceback__) if "/needleguide/" in f.filename]
    if not frames:
        return None
    f = frames[-1]
    inner = traceback.extract_tb(e.__traceback__)[-1].filename
    kind_of = "pydicom" if "/pydicom/" in inner else type(e).__name__
    for (name, func, kind, text), why in KNOWN.items():
        if Path(f.filename).name == name and f.name in func.split("|") and kind_of == kind \
                and text in str(e):
            return why
    return None


def outcome(reader: str, fn: Callable[[], object]) -> str:
    """Call ``fn``; a UserError or a result is fine, anything else fails the test (unless
    it is one of the reported :data:`KNOWN` failures: counted apart)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            fn()
            res = "ok"
        except UserError as e:  # the CLI prints it as one line (cli.main joins lines)
            res = "UserError (several lines)" if "\n" in str(e).strip() else "UserError"
        except Exception as e:
            if _known(e) is None:
                raise
            res = f"known: {_known(e)}"
    RUNS.setdefault(reader, []).append(res)
    return res


@pytest.fixture
def work():
    d = Path(tempfile.mkdtemp(prefix="ng-fuzz-"))
    yield d
    shutil.rmtree(d, ignore_errors=True)


def report(reader: str) -> None:
    runs = RUNS.get(reader, [])
    multi = runs.count("UserError (several lines)")
    known = [r for r in runs if r.startswith("known: ")]
    print(f"\nfuzz {reader}: {len(runs)} runs, {runs.count('ok')} read, "
          f"{runs.count('UserError') + multi} refused with a UserError ({multi} of them "
          f"several lines long), {len(known)} known reported failures, 0 other errors")
    for why in sorted(set(known)):
        print(f"  {known.count(why)} × {why}")
    assert len(runs) >= min(EXAMPLES, 20)


# ---- strategies ---------------------------------------------------------------------------
ODD = st.sampled_from([0.0, -1.0, 1e-9, 1e30, float("nan"), float("inf"), -float("inf")])
SIZES = st.one_of(st.floats(0.3, 4.0), ODD)
VALUES = st.one_of(st.floats(-3000, 3000), ODD)


def _fresh(folder: Path) -> Path:
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    return folder


@st.composite
def volumes(draw, max_side: int = 6) -> np.ndarray:
    ndim = draw(st.sampled_from([3, 3, 3, 2, 4, 1]))
    shape = tuple(draw(st.integers(1, max_side)) for _ in range(ndim))
    if ndim == 4:
        shape = shape[:3] + (draw(st.sampled_from([1, 2])),)
    dtype = draw(st.sampled_from(["float32", "float64", "int16", "uint8", "int32", "uint16"]))
    base = draw(st.floats(-1200, 1500))
    vol = np.full(shape, base)
    vol += np.random.default_rng(draw(st.integers(0, 2**32 - 1))).normal(0, 300, shape)
    for _ in range(draw(st.integers(0, 3))):
        idx = tuple(draw(st.integers(0, s - 1)) for s in shape)
        vol[idx] = draw(VALUES)
    if np.issubdtype(np.dtype(dtype), np.integer):
        info = np.iinfo(dtype)
        vol = np.clip(np.nan_to_num(vol, nan=0.0, posinf=info.max, neginf=info.min),
                      info.min, info.max)
    return vol.astype(dtype)


@st.composite
def affines(draw) -> np.ndarray:
    a = np.diag([draw(SIZES), draw(SIZES), draw(SIZES), 1.0])
    if draw(st.booleans()):
        m = np.asarray(draw(st.lists(st.floats(-1, 1), min_size=9, max_size=9))).reshape(3, 3)
        with np.errstate(all="ignore"):
            a[:3, :3] = a[:3, :3] @ m
    a[:3, 3] = [draw(st.one_of(st.floats(-500, 500), ODD)) for _ in range(3)]
    return a


def save_nifti(vol: np.ndarray, aff: np.ndarray, path: Path, draw) -> None:
    """``vol`` as NIfTI with the affine and odd header fields drawn by ``draw``."""
    img = nib.Nifti1Image(vol, None)
    h = img.header
    with np.errstate(all="ignore"):
        if draw(st.booleans()):
            img.set_sform(aff, code=draw(st.integers(0, 4)))
        if draw(st.booleans()):
            try:
                img.set_qform(aff, code=draw(st.integers(0, 4)))
            except Exception:  # noqa: BLE001 - nibabel refuses some: keep the sform only
                pass
        if draw(st.integers(0, 3)) == 0:
            pix = h["pixdim"].copy()
            pix[1:4] = [draw(SIZES) for _ in range(3)]
            h["pixdim"] = pix
        if draw(st.integers(0, 3)) == 0:
            h["scl_slope"], h["scl_inter"] = draw(VALUES), draw(VALUES)
        nib.save(img, str(path))


def mutate(data: bytes, draw, header: int = 352) -> bytes:
    """Random bytes changed (mostly in the header) and maybe the end cut off."""
    b = bytearray(data)
    for _ in range(draw(st.integers(1, 8))):
        hi = min(len(b), header) if draw(st.booleans()) else len(b)
        i = draw(st.integers(0, max(hi - 1, 0)))
        b[i] = draw(st.integers(0, 255))
    if draw(st.booleans()):
        b = b[: draw(st.integers(0, len(b)))]
    return bytes(b)


# ---- NIfTI CT -----------------------------------------------------------------------------
def test_fuzz_nifti_ct(work):
    @FUZZ
    @given(data=st.data())
    def run(data):
        draw = data.draw
        f = _fresh(work / "n") / draw(st.sampled_from(["ct.nii.gz", "ct.nii"]))
        try:
            save_nifti(draw(volumes()), draw(affines()), f, draw)
        except Exception:  # noqa: BLE001 - nibabel cannot write this one: skip it
            return
        if draw(st.booleans()):
            raw = f.read_bytes()
            if f.suffix == ".gz":
                raw = gzip.compress(mutate(gzip.decompress(raw), draw))
            f.write_bytes(mutate(raw, draw) if draw(st.booleans()) else raw)
        outcome("nifti", lambda: read_ct(f))
        outcome("nifti", lambda: import_ct(f))

    run()
    report('nifti')


# ---- DICOM CT -----------------------------------------------------------------------------
def dicom_slice(k: int, n_rows: int, n_cols: int, series: str, draw) -> pydicom.Dataset:
    ds = pydicom.Dataset()
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.2"
    meta.MediaStorageSOPInstanceUID = f"{series}.{k + 1}"
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta = meta
    ds.SOPClassUID = meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.SeriesInstanceUID = series
    ds.Modality = "CT"
    ds.Rows, ds.Columns = n_rows, n_cols
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    bits = draw(st.sampled_from([16, 16, 8, 32]))
    ds.BitsAllocated = ds.BitsStored = bits
    ds.HighBit = bits - 1
    ds.PixelRepresentation = draw(st.sampled_from([0, 1]))
    odd = draw(st.sampled_from(["ok"] * 6 + ["spacing", "iop", "ipp", "rescale", "missing",
                                             "pixels"]))
    sp = [0.7, 0.7] if odd != "spacing" else [draw(SIZES), draw(SIZES)]
    iop = [1, 0, 0, 0, 1, 0] if odd != "iop" else [draw(VALUES) for _ in range(6)]
    ipp = [0.0, 0.0, 2.5 * k] if odd != "ipp" else [draw(VALUES) for _ in range(3)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds.PixelSpacing = [str(x) for x in sp]
        ds.ImageOrientationPatient = [str(x) for x in iop]
        ds.ImagePositionPatient = [str(x) for x in ipp]
        ds.SliceThickness = "2.5"
        ds.RescaleSlope = "1" if odd != "rescale" else str(draw(VALUES))
        ds.RescaleIntercept = "-1024" if odd != "rescale" else str(draw(VALUES))
    n = n_rows * n_cols * bits // 8
    if odd == "pixels":
        n = draw(st.integers(0, 2 * n + 3))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    ds.PixelData = rng.integers(0, 256, n, dtype=np.uint8).tobytes()
    if odd == "missing":
        del ds[draw(st.sampled_from(["PixelSpacing", "ImagePositionPatient", "Rows",
                                     "BitsAllocated", "PixelData", "RescaleSlope"]))]
    return ds


def test_fuzz_dicom_ct(work):
    @FUZZ
    @given(data=st.data())
    def run(data):
        draw = data.draw
        folder = _fresh(work / "dcm")
        n_rows, n_cols = draw(st.integers(1, 6)), draw(st.integers(1, 6))
        series = f"1.2.826.0.1.3680043.8.498.{draw(st.integers(1, 10**6))}"  # fixed length
        files = []
        for k in range(draw(st.integers(1, 4))):
            ds = dicom_slice(k, n_rows, n_cols, series, draw)
            f = folder / f"s{k:03d}.dcm"
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    ds.save_as(f, enforce_file_format=True)
            except Exception:  # noqa: BLE001 - pydicom cannot write this one
                continue
            files.append(f)
        if files and draw(st.booleans()):
            f = draw(st.sampled_from(files))
            f.write_bytes(mutate(f.read_bytes(), draw, header=600))
        target = folder if not files or draw(st.booleans()) else draw(st.sampled_from(files))
        outcome("dicom", lambda: read_ct(target))

    run()
    report('dicom')


# ---- label maps ---------------------------------------------------------------------------
CT_AFF = np.diag([1.5, 1.5, 2.0, 1.0])


def small_ct(folder: Path) -> Path:
    hu = np.full((8, 8, 6), -1000.0, np.float32)
    hu[1:7, 1:7, :] = 40.0
    hu[3:5, 3:5, :] = 700.0
    nib.save(nib.Nifti1Image(hu, CT_AFF), str(folder / "ct.nii.gz"))
    return folder / "ct.nii.gz"


def test_fuzz_label_maps(work):
    @FUZZ
    @given(data=st.data())
    def run(data):
        draw = data.draw
        folder = _fresh(work / "lab")
        ct = small_ct(folder)
        kind = draw(st.sampled_from(["ids", "ids", "masks", "bytes"]))
        if kind == "masks":
            lab = folder / "masks"
            lab.mkdir()
            for _ in range(draw(st.integers(0, 3))):
                name = draw(st.sampled_from(["vertebrae_L4", "sacrum", "spinal_cord", "aorta",
                                             "kidney_left", "nonsense", "rib_left_3"]))
                m = (np.random.default_rng(draw(st.integers(0, 99))).random((8, 8, 6)) > 0.6)
                aff = CT_AFF if draw(st.booleans()) else draw(affines())
                try:
                    save_nifti(m.astype(draw(st.sampled_from(["uint8", "float32"]))), aff,
                               lab / f"{name}.nii.gz", draw)
                except Exception:  # noqa: BLE001
                    pass
        else:
            shape = (8, 8, 6) if draw(st.integers(0, 3)) else \
                tuple(draw(st.integers(1, 9)) for _ in range(3))
            ids = np.random.default_rng(draw(st.integers(0, 2**32 - 1))).choice(
                draw(st.lists(st.one_of(st.integers(0, 61), st.integers(0, 61),
                                  st.integers(-5, 70000)), min_size=1, max_size=6)),
                size=shape)
            dtype = draw(st.sampled_from(["uint8", "int16", "int32", "float32", "uint16"]))
            with np.errstate(all="ignore"):
                vol = ids.astype(dtype)
            if dtype == "float32" and draw(st.booleans()):
                vol.flat[0] = draw(ODD)
            lab = folder / "seg.nii.gz"
            aff = CT_AFF if draw(st.integers(0, 3)) else draw(affines())
            try:
                save_nifti(vol, aff, lab, draw)
            except Exception:  # noqa: BLE001
                return
            if kind == "bytes":
                lab.write_bytes(gzip.compress(mutate(gzip.decompress(lab.read_bytes()), draw)))
        names = draw(st.sampled_from([None, "ours", "ours", "ours", "totalseg", "totalseg-v1",
                                      "totalseg-v2", "file", "bogus"]))
        if names == "file":
            names = folder / "names.json"
            names.write_text(draw(st.sampled_from(['{"1": "vertebrae_L4", "2": "sacrum"}', "[1]",
                                                   "{", '{"x": 3}', '{"1": null}'])))
        resample = draw(st.booleans())
        spacing = draw(st.sampled_from([None] * 5 + [2.0, 0.1, float("nan")]))
        outcome("labels", lambda: import_ct(ct, lab, spacing_mm=spacing, label_names=names,
                                            resample_labels=resample))

    run()
    report('labels')


# ---- patient folders (load_patient_dir) ---------------------------------------------------
JSON = st.recursive(st.one_of(st.none(), st.booleans(), st.integers(-10, 10**6),
                              st.floats(allow_nan=False), st.text(max_size=8)),
                    lambda c: st.one_of(st.lists(c, max_size=4),
                                        st.dictionaries(st.text(max_size=8), c, max_size=4)),
                    max_leaves=12)
GOOD = {"tissues.json": None, "landmarks.json": {"L4.x": {"ras_mm": [1, 2, 3],
                                                          "tissue": "bone"}},
        "vertebrae.json": {"L4": {"center_mm": [0, 0, 0], "superior": [0, 0, 1],
                                  "anterior": [0, 1, 0], "body_height_mm": 25}},
        "centerlines.json": {"aorta": {"kind": "artery", "points_mm": [[0, 0, 0], [0, 0, 9]],
                                       "radii_mm": [5, 5], "label": 20}},
        "meta.json": {"region": "lumbar"}}


def test_fuzz_patient_folders(work):
    @FUZZ
    @given(data=st.data())
    def run(data):
        draw = data.draw
        d = _fresh(work / "pat")
        labels = np.random.default_rng(draw(st.integers(0, 99))).integers(0, 40, (6, 6, 5))
        try:
            if not draw(st.booleans()):
                raise ValueError("plain")
            save_nifti(labels.astype(draw(st.sampled_from(["uint8", "int16", "float32"]))),
                       draw(affines()) if draw(st.booleans()) else CT_AFF, d / "labels.nii.gz",
                       draw)
        except Exception:  # noqa: BLE001 - nibabel cannot write it: a plain one
            nib.save(nib.Nifti1Image(labels.astype(np.uint8), CT_AFF), str(d / "labels.nii.gz"))
        for name, good in GOOD.items():
            how = draw(st.sampled_from(["good", "absent", "random", "garbage"]))
            if how == "good" and good is not None:
                (d / name).write_text(json.dumps(good))
            elif how == "random":
                (d / name).write_text(json.dumps(draw(JSON)))
            elif how == "garbage":
                (d / name).write_bytes(draw(st.binary(max_size=20)))
        if draw(st.booleans()):
            hu = draw(volumes(max_side=6))
            try:
                save_nifti(hu, CT_AFF if draw(st.booleans()) else draw(affines()),
                           d / "ct.nii.gz", draw)
            except Exception:  # noqa: BLE001
                pass
        if draw(st.booleans()):
            f = d / draw(st.sampled_from(["labels.nii.gz", "ct.nii.gz"]))
            if f.exists():
                f.write_bytes(mutate(f.read_bytes(), draw, header=40))
        outcome("patient folder", lambda: load_patient_dir(d))

    run()
    report('patient folder')


