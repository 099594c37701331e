"""Evaluation of the whole-spine level labeller (``levels_spine.label_spine``) against the
lumbar-only baseline (``levels.label_levels``, which counts up from the lowest disc as if
it were L5–S1), on labelled frames of the whole spine (``eval_levels_cases``).

Sets (seeds from ``seed``; held out when ≥ 1000):
- ``phantoms``: ``n`` whole-spine phantoms at 2 mm (BMI 19–40, degeneration 0–2, the
  numbering variants drawn at their published rates), ``frames`` random views each;
- ``transitional``: ``n_transitional`` phantoms forced to carry a variant (sacralised L5,
  lumbarised S1, six lumbar vertebrae, 11 and 13 rib pairs in turn), views drawn within
  60 mm of the vertebra where the variant changes the count (L5, or the last rib);
- ``ct``: ``n_ct`` phantoms (no variant) rendered at 1.5 mm and written as a synthetic CT
  (cortex, trabecular texture, 0.6 mm blur, 15 HU noise) averaged into slices of 1–5 mm
  (drawn per CT; whole multiples of 1.5 mm: 1.5, 3 or 4.5 mm) with TotalSegmentator-named
  masks, imported through ``import-ct`` (``anatomy.importer.import_ct``) and rendered from
  their HU; S1's pose is the phantom's (the importer derives poses for C1–L5 only).

Scoring per frame: a label counts when it carries a vertebra's name (ours: the anchor is
not "none" or "conflict"; the baseline always names); it is right when the nearest true
body centre within half the local pitch bears that name (a name where no vertebra is, or
on the wrong one, is wrong). ``accuracy.with_anchor``: right / named over frames with an
anchor in view, normal anatomy, per view and region; ``coverage``: named / vertebrae in
view there. ``abstention.without_anchor``: share of frames with no anchor in view (not
even partly: ``eval_levels_cases.partial_anchors``) in which no label reaches
confidence 0.5; ``partial_anchor``: those partly-anchored frames, how often they were
not named and how right the names were. ``ece``: expected calibration error (10 bins) of
every vertebra's confidence against whether its best name is right. Transitional frames:
share flagged (``"conflict"``) and share with a wrong named label.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np

from needleguide.lab.eval_levels_cases import Case, make_case, region_of
from needleguide.lab.population import EVAL_LEVELS

REGIONS = ("cervical", "thoracic", "lumbar")
VIEWS = ("ap", "lateral", "oblique")
FORCED = (("sacralised_L5", "12", "L5"), ("lumbarised_S1", "12", "L5"),
          ("six_lumbar", "12", "L5"), ("none", "11", "T11"), ("none", "13", "L1"))


def _pitch_px(truth: dict[str, tuple[float, float]], order: list[str]) -> float:
    names = sorted(truth, key=order.index)
    d = [np.hypot(truth[b][0] - truth[a][0], truth[b][1] - truth[a][1])
         for a, b in zip(names[:-1], names[1:], strict=False)
         if order.index(b) == order.index(a) + 1]
    return float(np.median(d)) if d else 40.0


def score(labels: list[tuple[str, float, float, float, str]], case: Case, order: list[str]
          ) -> dict:
    """labels: (name shown, col, row, confidence, best absolute name). Returns the frame's
    record: named, right, per-label (confidence, best name right)."""
    pitch = _pitch_px(case.truth, order)
    named = right = 0
    cal = []
    for shown, c, r, conf, guess in labels:
        near = None
        if case.truth:
            nm = min(case.truth, key=lambda k: np.hypot(case.truth[k][0] - c,
                                                       case.truth[k][1] - r))
            if np.hypot(case.truth[nm][0] - c, case.truth[nm][1] - r) < 0.5 * pitch:
                near = nm
        ok = near is not None and near == guess
        cal.append((conf, ok))
        if shown == guess:
            named += 1
            right += ok
    return {"named": named, "right": right, "cal": cal,
            "confident": any(c >= 0.5 for c, _ in cal)}


def _ours(frame) -> tuple[list, str]:
    from needleguide.guidance.levels_spine import label_spine

    res = label_spine(frame)
    return [(v.name, v.col_px, v.row_px, v.confidence, v.guess) for v in res.vertebrae], \
        res.anchor


def _baseline(frame) -> list:
    from needleguide.guidance.levels import label_levels

    return [(lab.name, lab.col_px, lab.row_px, lab.confidence, lab.name)
            for lab in label_levels(frame)]


def _phantom(seed: int, variants=None, spacing_mm: float = 2.0):
    from needleguide.anatomy.phantom import validate_params, wholespine

    rng = np.random.default_rng([seed, 99])
    bmi, deg = EVAL_LEVELS.factors(rng)
    m = wholespine.build(validate_params(region="spine", bmi=bmi, degeneration=deg,
                                         seed=seed, spacing_mm=spacing_mm), variants)
    return m.to_patient(), rng


def ct_patient(patient, slice_mm: float, seed: int, folder):
    """The phantom as a synthetic CT in ``slice_mm`` slices with TotalSegmentator-named
    masks (S1 = the sacrum within the S1 vertebra's slab), imported from ``folder``."""
    from pathlib import Path

    import nibabel as nib

    from needleguide.anatomy.importer import import_ct
    from needleguide.anatomy.patient import resample_labels
    from needleguide.anatomy.synthetic_ct import synthetic_ct, totalseg_masks

    d = Path(folder)
    hu = synthetic_ct(patient, noise_hu=15.0, blur_mm=0.6, seed=seed, cortex_mm=1.0,
                      texture_hu=80.0)
    dz = float(patient.spacing_mm[2])
    k = max(1, int(round(slice_mm / dz)))
    nz = hu.shape[2] // k
    thick = hu[:, :, :nz * k].reshape(hu.shape[0], hu.shape[1], nz, k).mean(axis=3)
    aff = patient.VoxelToPatient.copy()
    aff[:3, 3] += aff[:3, 2] * (k - 1) / 2.0
    aff[:3, 2] *= k
    (d / "seg").mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(np.rint(thick).astype(np.int16), aff), d / "ct.nii")
    import dataclasses

    lab = resample_labels(patient.labels, patient.VoxelToPatient, thick.shape, aff)
    small = dataclasses.replace(patient, labels=lab, VoxelToPatient=aff, renderer=None)
    masks = totalseg_masks(small)
    s1 = patient.vertebrae["S1"]
    from needleguide import geometry

    idx = np.argwhere(lab == patient.tissues.label("sacrum"))
    if idx.size:
        pts = geometry.apply(aff, idx.astype(float))
        near = np.abs((pts - s1.center_mm) @ np.asarray(s1.superior)) < 0.5 * s1.body_height_mm
        m = np.zeros(lab.shape, bool)
        m[tuple(idx[near].T)] = True
        masks["vertebrae_S1"] = m
    for name, m in masks.items():
        nib.save(nib.Nifti1Image(m.astype(np.uint8), aff), d / "seg" / f"{name}.nii")
    ct = import_ct(d / "ct.nii", d / "seg")
    # the importer derives vertebrae from C1-L5 masks only: S1's pose is the phantom's
    if "S1" not in ct.vertebrae:
        ct = dataclasses.replace(ct, vertebrae={**ct.vertebrae, "S1": patient.vertebrae["S1"]})
    return ct


class Tally:
    """Frame records by set, view, region, anchor, anatomy; summaries."""

    def __init__(self) -> None:
        self.rows: list[dict] = []

    def add(self, case: Case, order: list[str], which: str, labels: list, anchor: str,
            ct: bool = False) -> None:
        rec = score(labels, case, order)
        rec.update(view=case.view, region=case.region, anchored=bool(case.anchors),
                   partial=not case.anchors and bool(case.partial),
                   transitional=case.transitional, variant=case.variant, which=which,
                   anchor=anchor, ct=ct, n_truth=len(case.truth), seed=case.seed)
        self.rows.append(rec)

    def _sel(self, which, **kw) -> list[dict]:
        return [r for r in self.rows if r["which"] == which and
                all(r[k] == v for k, v in kw.items())]

    @staticmethod
    def _acc(rows: list[dict]) -> float | None:
        n = sum(r["named"] for r in rows)
        return round(sum(r["right"] for r in rows) / n, 4) if n else None

    @staticmethod
    def _abst(rows: list[dict]) -> float | None:
        return round(float(np.mean([not r["confident"] for r in rows])), 4) if rows else None

    @staticmethod
    def _ece(rows: list[dict]) -> float | None:
        cal = [x for r in rows for x in r["cal"]]
        if not cal:
            return None
        c = np.array([x[0] for x in cal])
        y = np.array([x[1] for x in cal], float)
        b = np.minimum((c * 10).astype(int), 9)
        return round(float(sum((b == k).mean() * abs(c[b == k].mean() - y[b == k].mean())
                               for k in range(10) if (b == k).any())), 4)

    def summary(self, which: str, ct: bool = False, normal: bool = True) -> dict:
        base = {"ct": ct} | ({"transitional": False} if normal else {})
        wa = {v: {g: self._acc(self._sel(which, view=v, region=g, anchored=True, **base))
                  for g in REGIONS} | {"all": self._acc(self._sel(which, view=v,
                                                                   anchored=True, **base))}
              for v in VIEWS}
        cov = {}
        for v in VIEWS:
            rs = self._sel(which, view=v, anchored=True, **base)
            n = sum(r["n_truth"] for r in rs)
            cov[v] = round(sum(r["named"] for r in rs) / n, 4) if n else None
        ab = {g: self._abst(self._sel(which, region=g, anchored=False, partial=False, **base))
              for g in REGIONS} | {"all": self._abst(self._sel(which, anchored=False,
                                                                partial=False, **base))}
        pa = self._sel(which, partial=True, **base)
        ece = {g: self._ece(self._sel(which, region=g, ct=ct)) for g in REGIONS} | \
            {"all": self._ece(self._sel(which, ct=ct))}
        return {"with_anchor": wa, "coverage": cov, "without_anchor": ab, "ece": ece,
                "partial_anchor": {"frames": len(pa), "abstained": self._abst(pa),
                                   "accuracy_named": self._acc(pa)},
                "frames": {"with_anchor": len(self._sel(which, anchored=True, **base)),
                           "without_anchor": len(self._sel(which, anchored=False,
                                                           partial=False, **base))}}

    def transitional(self, which: str) -> dict:
        rs = [r for r in self.rows if r["which"] == which and r["transitional"]
              and r.get("variant_in_view")]
        by = {}
        for r in rs:
            by.setdefault(r["variant"], []).append(r)

        def f(x):
            return {"frames": len(x),
                    "flagged": round(float(np.mean([r["anchor"] == "conflict" for r in x])), 4),
                    "mislabelled": round(float(np.mean([r["named"] > r["right"] for r in x])),
                                         4),
                    "abstained": round(float(np.mean([not r["confident"] for r in x])), 4)}
        return {"all": f(rs) if rs else None} | {k: f(v) for k, v in sorted(by.items())}


def evaluate_spine(n: int, seed: int, frames: int = 12, n_transitional: int = 0,
                   n_ct: int = 0, pixels: int = 256,
                   progress: Callable[[int, int], None] | None = None,
                   overlays_dir=None) -> dict:
    """The whole-spine level evaluation (module docstring); ours and the baseline."""
    tally = collect_spine(n, seed, frames, n_transitional, n_ct, pixels, progress,
                          overlays_dir)
    total = n + n_transitional + n_ct
    out = summarise(tally, n, n_transitional, n_ct)
    out["seeds"] = [seed, (seed + total - 1) % 2**32]
    out["frames_per_phantom"] = frames
    return out


def collect_spine(n: int, seed: int, frames: int = 12, n_transitional: int = 0,
                  n_ct: int = 0, pixels: int = 256,
                  progress: Callable[[int, int], None] | None = None,
                  overlays_dir=None, tally: Tally | None = None) -> Tally:
    """The frame records of the evaluation (``evaluate_spine``), added to ``tally``: seeds
    ``seed`` … for the phantoms, then the transitional, then the CT-path phantoms."""
    tally = Tally() if tally is None else tally
    total = n + n_transitional + n_ct
    step = 0

    def run(patient, rng, s, ct=False, around=None, k=frames):
        from needleguide.fluoro import CArmGeometry, Fluoroscope, make_settings

        fl = Fluoroscope(patient, make_settings(geometry=CArmGeometry(pixels=pixels)),
                         seed=s)
        order = list(patient.vertebrae)
        for i in range(k):
            case = make_case(patient, rng, s, pixels, fluoroscope=fl, around=around)
            f = case.frame.without_truth()
            ours, anchor = _ours(f)
            tally.add(case, order, "ours", ours, anchor, ct)
            tally.add(case, order, "baseline", _baseline(f), "S1", ct)
            if around is not None:
                v = around in case.truth
                tally.rows[-1]["variant_in_view"] = tally.rows[-2]["variant_in_view"] = v
            if overlays_dir is not None and i < 4:
                from needleguide.guidance.levels_spine import draw_spine, label_spine
                from needleguide.lab.eval_levels import _write_png

                _write_png(overlays_dir, f"spine_{s}{'_ct' if ct else ''}_{i}_{case.view}.png",
                           draw_spine(f, label_spine(f)))

    for i in range(n):
        s = (seed + i) % 2**32
        p, rng = _phantom(s)
        run(p, rng, s)
        step += 1
        if progress:
            progress(step, total)
    from needleguide.anatomy.phantom.thoracic_dims import SpineVariants

    for i in range(n_transitional):
        s = (seed + n + i) % 2**32
        ls, ribs, around = FORCED[i % len(FORCED)]
        p, rng = _phantom(s, SpineVariants(ls, ribs))
        if ls == "six_lumbar":
            around = "L6"
        run(p, rng, s, around=around)
        step += 1
        if progress:
            progress(step, total)
    if n_ct:
        import tempfile

        for i in range(n_ct):
            s = (seed + n + n_transitional + i) % 2**32
            p, rng = _phantom(s, SpineVariants("none", "12"), spacing_mm=1.5)
            slice_mm = float(rng.uniform(1.0, 5.0))
            with tempfile.TemporaryDirectory() as d:
                ct = ct_patient(p, slice_mm, s, d)
            run(ct, rng, s, ct=True)
            step += 1
            if progress:
                progress(step, total)
    return tally


def summarise(tally: Tally, n: int, n_transitional: int, n_ct: int) -> dict:
    """The evaluation's figures from its frame records (``collect_spine``, possibly
    several runs' records joined)."""
    out = {
        "ours": tally.summary("ours"), "baseline": tally.summary("baseline"),
        "ours_all_anatomy": tally.summary("ours", normal=False),
        "transitional": {"ours": tally.transitional("ours"),
                         "baseline": tally.transitional("baseline")},
        "phantoms": n, "transitional_phantoms": n_transitional, "ct_phantoms": n_ct,
    }
    if n_ct:
        out["ct"] = {"ours": tally.summary("ours", ct=True),
                     "baseline": tally.summary("baseline", ct=True)}
    out["fps"] = spine_fps()
    return out


def by_region(summary: dict) -> dict:
    """``with_anchor`` (view → region) turned region → view, with each region's 'all'."""
    wa = summary["with_anchor"]
    return {g: {v: wa[v][g] for v in VIEWS} for g in (*REGIONS, "all")}


def merge_keys(out: dict, spine: dict) -> None:
    """Add the whole-spine figures to ``evaluate_levels``' result (today's keys kept):
    ``accuracy.with_anchor`` (region → view), ``abstention.without_anchor`` and ``ece``
    (per region), the same under ``baseline``, and the whole evaluation as ``spine``."""
    for key, who in ((out, "ours"), (out.setdefault("baseline", {}), "baseline")):
        s = spine[who]
        key.setdefault("accuracy", {})["with_anchor"] = by_region(s)
        key["abstention"] = {"without_anchor": s["without_anchor"]}
        key["ece"] = s["ece"]
    out["spine"] = spine


def spine_fps(pixels: int = 512, repeats: int = 20, seed: int = 0) -> float:
    """Frames per second of ``label_spine`` at ``pixels``² (one core, a synthetic column
    of bright bodies with dark discs and noise, 20 repeats after one warm-up)."""
    from needleguide.guidance.levels_spine import label_spine
    from needleguide.lab.eval_levels import synthetic_column_frame

    f = synthetic_column_frame(pixels, seed, orbit_deg=0.0)
    label_spine(f)
    t0 = time.perf_counter()
    for _ in range(repeats):
        label_spine(f)
    return float(repeats / (time.perf_counter() - t0))


__all__ = ["evaluate_spine", "collect_spine", "summarise", "spine_fps", "merge_keys",
           "by_region", "ct_patient", "Tally", "score", "region_of"]
