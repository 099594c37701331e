"""User-facing errors: raised for bad input, printed by the CLI as one clear line."""

from __future__ import annotations

#: every seed, in every command and model: 0 … 2³²−1 (numpy's legacy seed range)
SEED_MAX = 2**32 - 1


class UserError(ValueError):
    """A mistake in what the user asked for (bad value, unknown name, unreadable file).

    The message names the field and the allowed range or choices. The CLI prints it as a
    single line and exits with status 2; it is never shown as a traceback.
    """


def check_range(field: str, value: float, lo: float, hi: float, unit: str = "") -> float:
    """Return ``value`` if ``lo <= value <= hi``, else raise :class:`UserError` naming the field."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        msg = f"{field}: expected a number in [{lo}, {hi}]{unit}, got {value!r}"
        raise UserError(msg) from None
    if not (lo <= v <= hi):
        raise UserError(f"{field}: {value}{unit} is outside the allowed range [{lo}, {hi}]{unit}")
    return v


def check_choice(field: str, value: str, choices: list[str] | tuple[str, ...]) -> str:
    """Return ``value`` if it is one of ``choices``, else raise :class:`UserError` listing them."""
    if value not in choices:
        raise UserError(f"{field}: unknown value {value!r}; choose one of: {', '.join(choices)}")
    return value


def check_seed(value: int, field: str = "--seed") -> int:
    """Return ``value`` if it is a seed in 0 … :data:`SEED_MAX`, else a :class:`UserError`."""
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= SEED_MAX:
        raise UserError(f"{field}: {value} is outside the allowed range [0, {SEED_MAX}]")
    return value
