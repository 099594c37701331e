"""Tracked image sequences as PLUS / 3D Slicer ``.seq.nrrd`` files (written with pynrrd).

One file holds the image frames as one NRRD volume with a ``list`` axis (the frames) and, in
NRRD key/value fields, the PLUS per-frame fields: ``Seq_FrameNNNN_<Name>Transform`` (16
numbers, the 4x4 matrix row by row, in the reference frame's own coordinates: RAS mm here;
no LPS flip, PLUS and Slicer use the matrix as is), ``..._<Name>TransformStatus`` (OK /
INVALID), ``..._Timestamp`` (s), ``..._ImageStatus``. Layout, checked against the readers:

- axes (fastest first) ``col row k=1 frame`` (``kinds: domain domain domain list``), RGB with a
  leading ``vector`` axis of 3. Slicer's volume-sequence reader (vtkMRMLVolumeSequenceStorage
  Node / vtkITKImageSequenceReader) wants 3 spatial axes plus a list axis; PLUS itself writes
  2-D frames as ``domain domain list`` with ``space dimension: 2``, which cannot carry the
  frame's pose, so we write the 3-D form (IGSIO's NRRD reader accepts up to 3 domains).
- ``space: right-anterior-superior``, ``space directions``/``space origin`` = the *first*
  frame's ``image_to_reference`` (pixel i = column, j = row), so Slicer shows the frames
  where they were when the probe stays put. Every frame's own pose is in
  ``Seq_FrameNNNN_ImageToReferenceTransform`` (PLUS's meaning: image pixels → reference mm).
- ``axis 3 index type/values`` (Slicer's sequence index: the timestamps, 3 decimals, as
  Slicer's transform reader rounds them), ``labels``/``units`` of the list axis ``time``/``s``.

Frames are streamed to an anonymous temporary file in the output folder as they are added
(the process does not grow during a recording); :meth:`SequenceRecorder.close` reads them
back once for pynrrd (peak memory ≈ the raw size of the recording) and renames the finished
file into place (:func:`needleguide.atomic.atomic_path`).
"""

from __future__ import annotations

import re
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO, Any

import numpy as np

from needleguide.atomic import atomic_path
from needleguide.errors import UserError

IMAGE_TRANSFORM = "ImageToReference"
_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9]*To[A-Z][A-Za-z0-9]*$")
_FIELD = re.compile(r"^Seq_Frame(\d+)_(\w+)$")
LIST_AXIS = 3  # Slicer numbers the sequence axis 3 whether or not there is a vector axis


def _matrix(name: str, m: Any) -> np.ndarray:
    a = np.asarray(m, dtype=float)
    if a.shape != (4, 4) or not np.all(np.isfinite(a)):
        raise UserError(f"{name}: expected a finite 4x4 matrix, got shape {a.shape}")
    if not np.allclose(a[3], [0.0, 0.0, 0.0, 1.0], atol=1e-9):
        raise UserError(f"{name}: the last row must be 0 0 0 1, got {a[3].tolist()}")
    return a


def _transform_name(name: str) -> str:
    n = name[:-len("Transform")] if name.endswith("Transform") else name
    if not _NAME.match(n):
        raise UserError(f"transforms: {name!r} is not a PLUS transform name "
                        "(<From>To<To>, letters and digits, e.g. ProbeToReference)")
    return n


def _fmt_matrix(m: np.ndarray) -> str:
    return " ".join(f"{v + 0.0:.10g}" for v in np.asarray(m, float).ravel())  # no "-0"


class SequenceRecorder:
    """Record tracked frames into ``path`` (a ``.seq.nrrd``); also a context manager.

    ``add(image, image_to_reference, transforms, t_s)``: ``image`` (rows, cols) uint8 or
    uint16, or (rows, cols, 3) uint8 RGB; ``image_to_reference`` 4x4 pixel (i = col, j = row)
    → reference (RAS) mm; ``transforms`` name → 4x4 (or None: not tracked in this frame, status
    INVALID); ``t_s`` seconds, strictly increasing. All frames share shape and dtype.
    """

    def __init__(self, path: Path | str, compression_level: int = 1) -> None:
        self.path = Path(path)
        if not self.path.name.endswith(".nrrd"):
            raise UserError(f"sequence file: {self.path.name!r} must end in .seq.nrrd")
        self.compression_level = int(compression_level)
        self._shape: tuple[int, ...] | None = None
        self._dtype: np.dtype | None = None
        self._spill: IO[bytes] | None = None
        self._n = 0
        self._times: list[float] = []
        self._image_poses: list[np.ndarray] = []
        self._transforms: list[dict[str, np.ndarray | None]] = []
        self._names: list[str] = []
        self._closed = False

    # ---- recording ------------------------------------------------------------------------
    def add(self, image: np.ndarray, image_to_reference: Any,
            transforms: Mapping[str, Any] | None = None, t_s: float = 0.0) -> None:
        if self._closed:
            raise UserError("sequence recorder: add() after close()")
        img = np.asarray(image)
        if img.dtype not in (np.uint8, np.uint16) or img.ndim not in (2, 3) or \
                (img.ndim == 3 and (img.shape[2] != 3 or img.dtype != np.uint8)) or \
                min(img.shape[:2]) < 1:
            raise UserError(f"image: expected (rows, cols) uint8/uint16 or (rows, cols, 3) "
                            f"uint8, got {img.shape} {img.dtype}")
        if self._shape is None:
            self._shape, self._dtype = img.shape, img.dtype
            self._spill = tempfile.TemporaryFile(dir=self.path.parent, prefix=".seqframes.")
        elif img.shape != self._shape or img.dtype != self._dtype:
            raise UserError(f"image: frame {self._n} is {img.shape} {img.dtype}; the first "
                            f"was {self._shape} {self._dtype} (all frames must match)")
        t = float(t_s)
        if not np.isfinite(t) or (self._times and t <= self._times[-1]):
            raise UserError(f"t_s: {t_s} must be finite and later than the previous frame "
                            f"({self._times[-1] if self._times else '-'} s)")
        pose = _matrix("image_to_reference", image_to_reference)
        if np.linalg.norm(np.cross(pose[:3, 0], pose[:3, 1])) < 1e-12:
            raise UserError("image_to_reference: degenerate (zero pixel spacing or parallel "
                            "column and row axes)")
        if abs(np.linalg.det(pose[:3, :3])) < 1e-12:  # 2-D image: give k the unit normal
            nrm = np.cross(pose[:3, 0], pose[:3, 1])
            pose = pose.copy()
            pose[:3, 2] = nrm / np.linalg.norm(nrm)
        tr: dict[str, np.ndarray | None] = {}
        for name, m in (transforms or {}).items():
            n = _transform_name(str(name))
            if n == IMAGE_TRANSFORM:
                raise UserError(f"transforms: {n} is written from image_to_reference")
            tr[n] = None if m is None else _matrix(f"transforms[{name!r}]", m)
            if n not in self._names:
                self._names.append(n)
        assert self._spill is not None
        self._spill.write(np.ascontiguousarray(img).tobytes())
        self._times.append(t)
        self._image_poses.append(pose)
        self._transforms.append(tr)
        self._n += 1

    def __len__(self) -> int:
        return self._n

    # ---- finishing ------------------------------------------------------------------------
    def _header(self) -> dict[str, Any]:
        assert self._shape is not None
        rgb = len(self._shape) == 3
        pose = self._image_poses[0]
        col, row = pose[:3, 0], pose[:3, 1]
        # the pose's k axis at unit length: one slice, 1 mm thick (+0.0: no "-0" printed)
        normal = pose[:3, 2] / np.linalg.norm(pose[:3, 2]) + 0.0
        none = np.full(3, np.nan)
        dirs = [col, row, normal, none]
        h: dict[str, Any] = {
            "space": "right-anterior-superior",
            "space directions": np.array(([none] if rgb else []) + dirs),
            "kinds": (["vector"] if rgb else []) + ["domain", "domain", "domain", "list"],
            "labels": ([""] if rgb else []) + ["", "", "", "time"],
            "units": ([""] if rgb else []) + ["", "", "", "s"],
            "endian": "little",
            "encoding": "gzip",
            "space origin": pose[:3, 3].copy(),
            "DataNodeClassName": "vtkMRMLVectorVolumeNode" if rgb else "vtkMRMLScalarVolumeNode",
            # MetaIO-style names (Slicer's ReadSequenceFileTransforms) and IGSIO's NRRD names
            "UltrasoundImageOrientation": "MF",
            "UltrasoundImageType": "RGB_COLOR" if rgb else "BRIGHTNESS",
            "ultrasound image orientation": "MF",
            "ultrasound image type": "RGB_COLOR" if rgb else "BRIGHTNESS",
            "ElementNumberOfChannels": "3" if rgb else "1",
        }
        for f in range(self._n):
            p = f"Seq_Frame{f:04d}_"
            h[p + "FrameNumber"] = str(f)
            for name in [IMAGE_TRANSFORM, *self._names]:
                m = self._image_poses[f] if name == IMAGE_TRANSFORM \
                    else self._transforms[f].get(name)
                h[p + name + "Transform"] = _fmt_matrix(np.eye(4) if m is None else m)
                h[p + name + "TransformStatus"] = "INVALID" if m is None else "OK"
            h[p + "Timestamp"] = f"{self._times[f]:.6f}"
            h[p + "UnfilteredTimestamp"] = f"{self._times[f]:.6f}"
            h[p + "ImageStatus"] = "OK"
        # Last: one long line; Slicer's and IGSIO's header parsers read 1000 characters a line
        # and stop at a line without ':', which must not happen before the Seq_Frame fields.
        h[f"axis {LIST_AXIS} index type"] = "numeric"
        h[f"axis {LIST_AXIS} index values"] = " ".join(f"{t:.3f}" for t in self._times)
        return h

    def close(self) -> Path:
        """Write the file (atomically) and return its path; no frames is an error."""
        import nrrd

        if self._closed:
            return self.path
        if self._n == 0 or self._spill is None or self._shape is None:
            raise UserError(f"{self.path.name}: no frames were added")
        try:
            self._spill.flush()
            self._spill.seek(0)
            rows, cols = self._shape[:2]
            shape = (self._n, 1, rows, cols) + ((3,) if len(self._shape) == 3 else ())
            data = np.fromfile(self._spill, dtype=self._dtype).reshape(shape)
            with atomic_path(self.path) as tmp:
                nrrd.write(str(tmp), data, self._header(), index_order="C",
                           compression_level=self.compression_level)
        finally:
            self._spill.close()
            self._closed = True
        return self.path

    def abort(self) -> None:
        """Drop the recording: no file is written."""
        if self._spill is not None:
            self._spill.close()
        self._closed = True

    def __enter__(self) -> SequenceRecorder:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


def read_sequence(path: Path | str) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    """(frames (n, rows, cols[, 3]), times_s (n,), name → (n, 4, 4)) of a PLUS ``.seq.nrrd``.

    Transform names are without the ``Transform`` suffix (``ProbeToReference``,
    ``ImageToReference``); frames whose status is not OK get NaN matrices. Works on files
    with 2 or 3 domain axes and an optional leading vector axis (PLUS's and ours).
    """
    import nrrd

    try:
        data, h = nrrd.read(str(path), index_order="C")
    except (OSError, nrrd.NRRDError) as e:
        raise UserError(f"{path}: not a readable NRRD sequence ({e})") from None
    kinds = [str(k).lower() for k in h.get("kinds", [])]
    if "list" not in kinds:
        raise UserError(f"{path}: no 'list' axis in kinds {kinds}: not a sequence file")
    # C order reverses the NRRD axes: move the list axis to the front, drop singleton k
    c_axes = kinds[::-1]
    frames = np.moveaxis(data, c_axes.index("list"), 0)
    vec = "vector" in c_axes
    if frames.ndim == (5 if vec else 4) and frames.shape[1] == 1:
        frames = frames[:, 0]
    n = frames.shape[0]
    fields: dict[int, dict[str, str]] = {}
    for k, v in h.items():
        m = _FIELD.match(str(k))
        if m:
            fields.setdefault(int(m.group(1)), {})[m.group(2)] = str(v).strip()
    times = np.array([float(fields.get(f, {}).get("Timestamp", "nan")) for f in range(n)])
    names = sorted({k[:-len("Transform")] for d in fields.values() for k in d
                    if k.endswith("Transform")})
    transforms: dict[str, np.ndarray] = {}
    for name in names:
        out = np.full((n, 4, 4), np.nan)
        for f in range(n):
            d = fields.get(f, {})
            if d.get(name + "TransformStatus", "OK").upper() != "OK" or \
                    name + "Transform" not in d:
                continue
            vals = np.array(d[name + "Transform"].split(), dtype=float)
            if vals.size == 16:
                out[f] = vals.reshape(4, 4)
            elif vals.size == 12:  # a 3x4 without the last row
                out[f] = np.vstack([vals.reshape(3, 4), [0.0, 0.0, 0.0, 1.0]])
        transforms[name] = out
    return frames, times, transforms


def frame_pixels_u8(pixels: np.ndarray) -> np.ndarray:
    """A Frame's pixels as stored: uint8/uint16 as is, floats in [0, 1] scaled to uint8."""
    a = np.asarray(pixels)
    if a.dtype in (np.uint8, np.uint16):
        return a
    if np.issubdtype(a.dtype, np.floating):
        return np.clip(np.nan_to_num(a) * 255.0 + 0.5, 0, 255).astype(np.uint8)
    raise UserError(f"frame pixels: unsupported dtype {a.dtype}")


def record_frames(path: Path | str, frames: Sequence[Any],
                  transforms_per_frame: Sequence[Mapping[str, Any]] | None = None) -> Path:
    """Write needleguide ``Frame`` s (and per-frame transforms) as one ``.seq.nrrd``.

    image_to_reference = ``ImageToPatient @ diag(spacing_col, spacing_row, 1, 1)`` (the
    Frame's image mm → pixel indices); the frame times are the timestamps.
    """
    if transforms_per_frame is not None and len(transforms_per_frame) != len(frames):
        raise UserError(f"transforms_per_frame: {len(transforms_per_frame)} entries for "
                        f"{len(frames)} frames")
    with SequenceRecorder(path) as rec:
        for i, fr in enumerate(frames):
            sr, sc = (float(s) for s in fr.spacing_mm)
            pose = np.asarray(fr.ImageToPatient, float) @ np.diag([sc, sr, 1.0, 1.0])
            rec.add(frame_pixels_u8(fr.pixels), pose,
                    transforms_per_frame[i] if transforms_per_frame else {}, fr.time_s)
    return Path(path)
