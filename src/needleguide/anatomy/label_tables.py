"""Which table names the ids of a multilabel NIfTI: ours, TotalSegmentator v1 or v2.

Names come, in order, from ``--label-names FILE.json`` / ``ours`` / ``totalseg-v1`` /
``totalseg-v2``, a sidecar ``SEG.json``, or the XML label table TotalSegmentator writes
into the NIfTI header extension (since v1.5). Without any of these (or with
``--label-names totalseg``, version unknown) the table is decided from the ids and the CT
under them, and refused when the evidence does not decide:

1. *Ids*: a table that leaves a present id unnamed while another table names every id it
   names and more is out (an id above 61 is not ours, above 104 not v1).
2. *Air*: our id 0 is ``air``. If more than 10 % of the CT's non-air voxels (HU >= -400)
   carry id 0, the map is not ours (TotalSegmentator's ``total`` leaves fat, skin and
   unnamed muscle at 0).
3. *Checks* of each remaining table against the CT, for every id with >= 30 voxels:
   the median HU under it must suit the tissue the table gives it (bone >= 90 HU; muscle
   and spinal cord -150..150; lung < -300; solid organs -150..400; our fat -400..0;
   vessels, bowel and the rest are not checked); the vertebrae it names must lie in
   cranio-caudal order (centroid z falls from C1 to S1); a ``*_left`` structure must lie
   to the patient's left (−x in RAS) of its ``*_right`` partner.
4. A table *fits* when at most 10 % of its checks fail. It is used when it is the only
   one that fits (or all that fit give the same names) and at least 3 of its checks
   passed; otherwise the map is refused and ``--label-names`` must say.

Reading TotalSegmentator ids as ours (or v1 as v2) puts bone on lung, muscle or bowel and
breaks the vertebral order, so a wrong table fails many checks; a check that fails for a
right table (pathology, unusual anatomy) can only lead to a refusal, never to a guess.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from needleguide.anatomy import totalseg
from needleguide.anatomy.tissues import TissueTable
from needleguide.anatomy.totalseg_ids import TABLES
from needleguide.errors import UserError

CHOICES: tuple[str, ...] = ("ours", "totalseg", "totalseg-v1", "totalseg-v2")
USAGE = ("name the table with --label-names ours|totalseg-v1|totalseg-v2|FILE.json "
         "({id: name})")
MIN_VOXELS = 30
MAX_FAIL = 0.10
MIN_PASS = 3
SPARSE = 0.10
HU_RANGE: dict[str, tuple[float, float]] = {
    "air": (-np.inf, -300.0), "fat": (-400.0, 0.0), "soft": (-150.0, 150.0),
    "organ": (-150.0, 400.0), "bone": (90.0, np.inf)}
_ORGANS = frozenset({"liver", "spleen", "pancreas", "kidney", "adrenal_gland",
                     "gallbladder", "prostate", "thyroid_gland", "brain"})
_LUNG = frozenset({"lung_upper_lobe", "lung_middle_lobe", "lung_lower_lobe"})
_HU0, _BIN = -1100.0, 10.0
_NBINS = 420  # -1100 ... 3100 HU


@dataclass
class IdStats:
    """Per-id voxel count, median HU (10 HU bins) and centroid (patient mm), and the
    fraction of the CT's non-air voxels that carry id 0."""

    count: dict[int, int]
    median_hu: dict[int, float]
    center: dict[int, np.ndarray]
    zero_tissue_fraction: float


def id_stats(data: np.ndarray, hu: np.ndarray, aff: np.ndarray, air_hu: float) -> IdStats:
    """One pass over the axial slices (bincounts; no full-volume temporaries)."""
    n_ids = int(data.max()) + 1
    counts = np.zeros(n_ids, np.int64)
    for k in range(data.shape[2]):
        counts += np.bincount(data[:, :, k].ravel(), minlength=n_ids)
    present = np.flatnonzero(counts)
    m = len(present)
    lut = np.zeros(n_ids, np.int64)
    lut[present] = np.arange(m)
    hist = np.zeros(m * _NBINS, np.int64)
    sums = np.zeros((m, 3))
    ii, jj = (g.ravel().astype(float) for g in np.indices(data.shape[:2]))
    for k in range(data.shape[2]):
        c = lut[data[:, :, k].ravel()]
        h = np.clip(hu[:, :, k].ravel(), _HU0, _HU0 + _BIN * _NBINS - 1)
        b = ((h - _HU0) * (1.0 / _BIN)).astype(np.int64)
        hist += np.bincount(c * _NBINS + b, minlength=m * _NBINS)
        cnt = np.bincount(c, minlength=m)
        sums[:, 0] += np.bincount(c, weights=ii, minlength=m)
        sums[:, 1] += np.bincount(c, weights=jj, minlength=m)
        sums[:, 2] += k * cnt
    hist = hist.reshape(m, _NBINS)
    first_tissue = int(np.clip((air_hu - _HU0) // _BIN, 0, _NBINS - 1))
    tissue = hist[:, first_tissue:].sum()
    zero = hist[0, first_tissue:].sum() if present[0] == 0 else 0
    cum = np.cumsum(hist, axis=1)
    med = _HU0 + _BIN * (np.argmax(cum >= (cum[:, -1:] + 1) // 2, axis=1) + 0.5)
    ijk = sums / counts[present][:, None]
    world = ijk @ aff[:3, :3].T + aff[:3, 3]
    ids = [int(v) for v in present]
    return IdStats({v: int(counts[v]) for v in ids}, {v: float(med[q]) for q, v in
                   enumerate(ids)}, {v: world[q] for q, v in enumerate(ids)},
                   float(zero / tissue) if tissue else 0.0)


def _ts_class(name: str, tissues: TissueTable) -> str | None:
    base = totalseg.base_name(name)
    if base in _LUNG:
        return "air"
    if base in _ORGANS:
        return "organ"
    t = totalseg.tissue_for(name)
    if t is None or t not in tissues:
        return None
    group = tissues[t].group
    return "bone" if group == "bone" else "soft" if (group == "muscle"
                                                      or t == "spinal_cord") else None


def _our_class(v: int, tissues: TissueTable) -> str | None:
    if v == 0 or v not in tissues:
        return None
    return {"bone": "bone", "fat": "fat", "muscle": "soft", "air": "air"}.get(
        tissues[v].group)


@dataclass
class Evidence:
    """Checks of one table against the CT: how many passed, which failed."""

    passed: int = 0
    failed: list[str] = field(default_factory=list)

    @property
    def fits(self) -> bool:
        return len(self.failed) <= MAX_FAIL * (self.passed + len(self.failed))

    def summary(self) -> str:
        n = self.passed + len(self.failed)
        return f"{len(self.failed)} of {n} checks failed" + (
            f" ({'; '.join(self.failed[:3])})" if self.failed else "")


def evaluate(table: str, st: IdStats, tissues: TissueTable) -> Evidence:
    """Run the HU, vertebral-order and side checks of ``table`` on the map's statistics."""
    ev = Evidence()
    names = TABLES.get(table, {})
    ids = [v for v, n in st.count.items() if v and n >= MIN_VOXELS]
    for v in ids:
        name = tissues[v].name if table == "ours" and v in tissues else names.get(v)
        cls = (_our_class(v, tissues) if table == "ours" else
               _ts_class(name, tissues) if name else None)
        if cls is None:
            continue
        lo, hi = HU_RANGE[cls]
        if lo <= st.median_hu[v] <= hi:
            ev.passed += 1
        else:
            ev.failed.append(f"id {v} {name}: {st.median_hu[v]:.0f} HU, not {cls}")
    if table == "ours":
        return ev
    levels = sorted((totalseg.LEVELS.index(lv), v) for v in ids
                    if (lv := totalseg.level_of(names.get(v, ""))))
    for (_, up), (_, down) in zip(levels, levels[1:], strict=False):
        if st.center[up][2] > st.center[down][2]:
            ev.passed += 1
        else:
            ev.failed.append(f"{names[up]} below {names[down]}")
    by_name = {names[v]: v for v in ids if v in names}
    for name, v in by_name.items():
        w = by_name.get(name.replace("_left", "_right")) if "_left" in name else None
        if w is None:
            continue
        if st.center[v][0] < st.center[w][0]:  # RAS: the patient's left is −x
            ev.passed += 1
        else:
            ev.failed.append(f"{name} right of its partner")
    return ev


def detect(st: IdStats, tissues: TissueTable, candidates: tuple[str, ...], where: str,
           min_pass: int = MIN_PASS) -> tuple[str, dict[str, str]]:
    """The table naming the ids (see the module docstring), and the evidence per table."""
    present = {v for v in st.count if v}
    known = {c: ({t.label for t in tissues} if c == "ours" else set(TABLES[c]))
             for c in candidates}
    unnamed = {c: present - known[c] for c in candidates}
    why: dict[str, str] = {}
    alive = []
    for c in candidates:
        if any(unnamed[d] < unnamed[c] for d in candidates):
            why[c] = "ids " + ", ".join(map(str, sorted(unnamed[c])[:6])) + " not in it"
        elif c == "ours" and st.zero_tissue_fraction > SPARSE:
            why[c] = f"{100 * st.zero_tissue_fraction:.0f}% of the body at id 0 (air)"
        else:
            alive.append(c)
    evidence = {c: evaluate(c, st, tissues) for c in alive}
    why.update({c: e.summary() for c, e in evidence.items()})
    fitting = [c for c in alive if evidence[c].fits]
    readings = {None if c == "ours" else tuple(TABLES[c].get(v) for v in sorted(present))
                for c in fitting}  # tables that fit but name the present ids alike agree
    if len(readings) == 1:
        best = max(fitting, key=lambda c: evidence[c].passed)
        if evidence[best].passed >= min_pass:
            return best, why
    if len(readings) > 1:
        reason = f"{' and '.join(fitting)} each fit"
    elif fitting:
        reason = f"too little evidence for {fitting[0]} ({why[fitting[0]]})"
    else:
        reason = "no table fits: " + "; ".join(f"{c}: {w}" for c, w in why.items())
    raise UserError(f"labels: cannot tell which table names the ids in {where} ({reason}); "
                    + USAGE)


def check_label_names(value: str | Path) -> Path | None:
    """None for one of :data:`CHOICES`, else the JSON file it names; anything else is a
    UserError listing the choices."""
    if str(value) in CHOICES:
        return None
    src = Path(value)
    if src.suffix.lower() != ".json" and not src.exists():
        raise UserError(f"label_names: {str(value)!r} is none of {', '.join(CHOICES)} and "
                        "not a JSON file {id: name}")
    return src


def _read_names_file(src: Path) -> dict[int, str]:
    try:
        raw = json.loads(src.read_text(encoding="utf-8"))
        return {int(k): str(v) for k, v in raw.items()}
    except (OSError, ValueError, AttributeError) as e:
        raise UserError(f"label_names: {src} is not a JSON object {{id: name}} ({e})"
                        ) from None


def names_for(seg: Path, img, label_names: str | Path | None, data: np.ndarray,
              hu: np.ndarray, aff: np.ndarray, tissues: TissueTable, air_hu: float,
              ) -> tuple[dict[int, str] | None, dict]:
    """id -> name for a multilabel map (None: our own ids) and how it was decided."""
    choice = None if label_names is None else str(label_names)
    if choice in ("ours", "totalseg-v1", "totalseg-v2"):
        return (None if choice == "ours" else dict(TABLES[choice])), {
            "label_table": choice, "label_table_from": "--label-names"}
    if choice is not None and choice != "totalseg":
        src = check_label_names(choice)
        return _read_names_file(src), {"label_table": str(src), "label_table_from": "file"}
    if choice is None:
        stem = seg.name[:-7] if seg.name.lower().endswith(".nii.gz") else seg.stem
        side = seg.with_name(stem + ".json")
        if side.exists():
            return _read_names_file(side), {"label_table": str(side),
                                            "label_table_from": "sidecar"}
        table = totalseg.parse_label_table_extension(img.header.extensions)
        if table:
            return table, {"label_table": "NIfTI header", "label_table_from": "header"}
    cands = ("totalseg-v1", "totalseg-v2") if choice else ("ours", *TABLES)
    st = id_stats(data, hu, aff, air_hu)
    best, why = detect(st, tissues, cands, seg.name, min_pass=1 if choice else MIN_PASS)
    info = {"label_table": best, "label_table_from": "detected", "label_table_evidence": why}
    return (None if best == "ours" else dict(TABLES[best])), info
