"""The trainer's commands: validation at once (a :class:`~needleguide.errors.UserError`
whose message starts with the field it names, e.g. ``"tilt_deg: 70 is outside [-45, 45]
deg"``), against the session as it will stand when the command is applied (the commands
queued before it included: :func:`predict`).

Commands are dicts with "op" and an optional integer "id" (echoed as the frames' ack);
the fields of each op are listed in :data:`FIELDS` (docs/app.md, "Commands").
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from needleguide.errors import UserError
from needleguide.live.trainer_probe import POSE_LIMIT_MM, TILT_LIMIT_DEG, moved_pose

PROBE_STEP = {"slide_mm": (-20.0, 20.0, "mm"), "elev_mm": (-20.0, 20.0, "mm"),
              "tilt_deg": (-15.0, 15.0, "deg"), "rotate_deg": (-45.0, 45.0, "deg")}
CARM_RANGE = {"orbit_deg": (-90.0, 90.0, "deg"), "tilt_deg": (-45.0, 45.0, "deg")}
ADVANCE_MM = (0.1, 20.0, "mm")
WITHDRAW_MM = (0.1, 250.0, "mm")
STEER_RANGE = {"inplane_deg": (-5.0, 5.0, "deg"), "outplane_deg": (-5.0, 5.0, "deg")}
OVERLAYS = ("tip", "shaft", "levels", "alarm")

US_OPS = ("probe", "probe_reset", "us")
FL_OPS = ("carm", "view", "pedal", "spot")
COMMON_OPS = ("entry", "insert", "advance", "withdraw", "steer", "inject", "overlays",
              "finish")
FIELDS: dict[str, tuple[str, ...]] = {
    "probe": tuple(PROBE_STEP), "probe_reset": (),
    "us": ("depth_mm", "gain_db", "frequency_mhz"),
    "carm": tuple(CARM_RANGE), "view": ("name",), "pedal": ("down",), "spot": (),
    "entry": ("px",), "insert": (), "advance": ("mm",), "withdraw": ("mm",),
    "steer": tuple(STEER_RANGE), "inject": ("dsa",), "overlays": OVERLAYS, "finish": (),
}
REQUIRED = {"view": ("name",), "pedal": ("down",), "entry": ("px",), "advance": ("mm",),
            "withdraw": ("mm",)}
NEEDLE_MOVES = ("entry", "insert", "advance", "withdraw", "steer")
IMAGER_MOVES = ("probe", "probe_reset", "us", "carm", "view", "spot")


@dataclass
class Context:
    """The session as a command will find it (what validation needs)."""

    modality: str
    views: tuple[str, ...] = ()
    us_ranges: dict[str, tuple[float, float]] = field(default_factory=dict)
    pose: tuple[float, float, float, float] = (0.0, 0.0, 0.0, 0.0)
    in_body: bool = False
    inserted_mm: float = 0.0
    entry_set: bool = False
    injecting: bool = False  # a test dose flowing in
    reading: bool = False  # the contrast classifier reading a test dose
    finished: bool = False
    image_px: tuple[int, int] = (512, 512)  # (columns, rows) of the image shown


@dataclass(frozen=True)
class Command:
    id: int | None
    op: str
    args: dict[str, Any]


def number(name: str, value: Any, lo: float, hi: float, unit: str) -> float:
    """``value`` as a float if it is a finite number in [lo, hi], else a UserError naming
    ``name`` and the range."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise UserError(f"{name}: expected a number in [{lo:g}, {hi:g}] {unit}, got "
                        f"{value!r}")
    v = float(value)
    if not math.isfinite(v):
        raise UserError(f"{name}: expected a finite number in [{lo:g}, {hi:g}] {unit}, got "
                        f"{value!r}")
    if not lo <= v <= hi:
        raise UserError(f"{name}: {value:g} is outside [{lo:g}, {hi:g}] {unit}")
    return v


def flag(name: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise UserError(f"{name}: expected true or false, got {value!r}")
    return value


def validate(cmd: Any, ctx: Context) -> Command:
    """The command checked against ``ctx``, its numbers as floats, or a UserError."""
    if not isinstance(cmd, dict):
        raise UserError(f"op: expected a command object with an 'op', got {cmd!r}")
    cid = cmd.get("id")
    if cid is not None and (isinstance(cid, bool) or not isinstance(cid, int)):
        raise UserError(f"id: expected an integer, got {cid!r}")
    op = cmd.get("op")
    ops = US_OPS + FL_OPS + COMMON_OPS
    if not isinstance(op, str) or op not in ops:
        raise UserError(f"op: unknown command {op!r}; choose one of {', '.join(ops)}")
    if ctx.finished:
        raise UserError("op: the session has finished")
    if op in US_OPS and ctx.modality != "us":
        raise UserError(f"op: {op!r} is an ultrasound command; this is a fluoroscopy "
                        "session")
    if op in FL_OPS and ctx.modality != "fluoro":
        raise UserError(f"op: {op!r} is a fluoroscopy command; this is an ultrasound "
                        "session")
    for k in cmd:
        if k not in ("op", "id") and k not in FIELDS[op]:
            allowed = ", ".join(FIELDS[op]) or "no fields"
            raise UserError(f"{k}: not a field of {op!r} (it takes {allowed})")
    for k in REQUIRED.get(op, ()):
        if k not in cmd:
            raise UserError(f"{k}: {op!r} needs it")
    args = {k: v for k, v in cmd.items() if k not in ("op", "id")}
    check_state(op, ctx)
    return Command(cid, op, _typed(op, args, ctx))


def check_state(op: str, ctx: Context) -> None:
    """A UserError if ``op`` cannot be applied to the session as ``ctx`` describes it
    (also checked again when the command is applied)."""
    if ctx.injecting and (op in NEEDLE_MOVES or op in IMAGER_MOVES or op == "inject"):
        raise UserError(f"{op}: a test dose is flowing in; wait until it is given")
    if op == "inject" and ctx.reading:
        raise UserError("inject: the contrast classifier is still reading the last test "
                        "dose")
    if op == "entry" and ctx.in_body:
        raise UserError("entry: the needle is in the body; withdraw it out of the skin "
                        "before picking a new entry")
    if op == "insert":
        if ctx.in_body:
            raise UserError("insert: the needle is already in the body; withdraw it out of "
                            "the skin first (a new pass)")
        if not ctx.entry_set:
            raise UserError("entry: pick the skin entry on the image first")
    if op in ("advance", "withdraw", "steer", "inject") and not ctx.in_body:
        raise UserError(f"{op}: the needle is not in the body; insert it first")


def _typed(op: str, args: dict[str, Any], ctx: Context) -> dict[str, Any]:
    if op == "probe":
        out = {k: number(k, args.get(k, 0.0), *PROBE_STEP[k]) for k in PROBE_STEP}
        pose = moved_pose(ctx.pose, **out)
        for k, v in (("slide_mm", pose[0]), ("elev_mm", pose[1])):
            if abs(v) > POSE_LIMIT_MM:
                raise UserError(f"{k}: the probe would be {v:.0f} mm from its planned "
                                f"position; the limit is [-{POSE_LIMIT_MM:g}, "
                                f"{POSE_LIMIT_MM:g}] mm")
        if abs(pose[2]) > TILT_LIMIT_DEG:
            raise UserError(f"tilt_deg: the probe would be tilted {pose[2]:.0f} deg from its "
                            f"planned pose; the limit is [-{TILT_LIMIT_DEG:g}, "
                            f"{TILT_LIMIT_DEG:g}] deg")
        return out
    if op == "us":
        units = {"depth_mm": "mm", "gain_db": "dB", "frequency_mhz": "MHz"}
        return {k: number(k, v, *ctx.us_ranges[k], units[k]) for k, v in args.items()}
    if op == "carm":
        return {k: number(k, v, *CARM_RANGE[k]) for k, v in args.items()}
    if op == "view":
        name = args["name"]
        if not isinstance(name, str) or name not in ctx.views:
            raise UserError(f"name: unknown view {name!r}; choose one of "
                            f"{', '.join(ctx.views)}")
        return {"name": name}
    if op == "pedal":
        return {"down": flag("down", args["down"])}
    if op == "entry":
        return {"px": _pixel(args["px"], ctx.image_px)}
    if op == "advance":
        return {"mm": number("mm", args["mm"], *ADVANCE_MM)}
    if op == "withdraw":
        return {"mm": number("mm", args["mm"], *WITHDRAW_MM)}
    if op == "steer":
        return {k: number(k, args.get(k, 0.0), *STEER_RANGE[k]) for k in STEER_RANGE}
    if op == "inject":
        dsa = flag("dsa", args.get("dsa", False))
        if dsa and ctx.modality != "fluoro":
            raise UserError("dsa: digital subtraction is a fluoroscopy mode")
        return {"dsa": dsa}
    if op == "overlays":
        return {k: flag(k, v) for k, v in args.items()}
    return {}


def _pixel(px: Any, size: tuple[int, int]) -> tuple[float, float]:
    cols, rows = size
    if not isinstance(px, (list, tuple)) or len(px) != 2:
        raise UserError(f"px: expected [column, row] in pixels of the image, got {px!r}")
    c = number("px", px[0], 0.0, cols - 1.0, "px (column)")
    r = number("px", px[1], 0.0, rows - 1.0, "px (row)")
    return c, r


def predict(ctx: Context, c: Command) -> None:
    """Update ``ctx`` as if ``c`` had been applied (for the commands queued after it;
    the next tick replaces the prediction with the session's real state)."""
    if c.op == "probe":
        ctx.pose = moved_pose(ctx.pose, **c.args)
    elif c.op == "probe_reset":
        ctx.pose = (0.0, 0.0, 0.0, 0.0)
    elif c.op == "entry":
        ctx.entry_set = True
    elif c.op == "insert":
        ctx.in_body, ctx.inserted_mm = True, 2.0
    elif c.op == "advance":
        ctx.inserted_mm += c.args["mm"]
    elif c.op == "withdraw":
        ctx.inserted_mm = max(0.0, ctx.inserted_mm - c.args["mm"])
        ctx.in_body = ctx.inserted_mm > 0.0
    elif c.op == "inject":
        ctx.injecting = True
    elif c.op == "finish":
        ctx.finished = True


__all__ = ["Command", "Context", "FIELDS", "OVERLAYS", "check_state", "predict", "validate"]
