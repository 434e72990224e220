"""The values of `impair:` (README, "Impairments and link state"): netem's delay, jitter, loss,
rate, duplication and corruption, read in tc's units and kept as normalised numbers.

Each value keeps the text it was written as, for messages. A mistake is an `ImpairProblem`
raised inside pydantic's validation; vnet/topology/pydantic_errors.py turns it into the
diagnostic it names, at the field it blames.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from fractions import Fraction
from typing import Annotated

from pydantic import PlainValidator, WithJsonSchema
from pydantic_core import PydanticCustomError

# netem holds every packet for the delay, up to its queue's limit (1000 packets) and then drops
# them: more than a minute is no longer a slow link, and almost always a unit mistake (`80s`).
MAX_DELAY_US = 60_000_000
# netem's rate is 64 bits of bytes per second.
MAX_RATE_BITS = 8 * (2 ** 64 - 1)
TIME_UNITS = {"us": 1, "ms": 1_000, "s": 1_000_000}
# tc's rate units: `bit` forms count bits per second, `bps` forms bytes per second (k = 1000).
RATE_UNITS = {f"{prefix}{unit}": scale * 1000 ** power
              for unit, scale in (("bit", 1), ("bps", 8))
              for power, prefix in enumerate(("", "k", "m", "g", "t"))}
# A signed decimal and a unit: a negative value gets a range error rather than "not a time".
_QUANTITY = re.compile(r"\s*(?P<number>[-+]?[0-9]+(?:\.[0-9]+)?)\s*(?P<unit>[a-z%]*)\s*\Z",
                       re.IGNORECASE)
_SHAPES = {bool: "a boolean", dict: "a mapping", list: "a list"}  # what YAML gives, not a quantity

TIME_HINT = "a time is a number with `us`, `ms` or `s`: `500us`, `20ms`, `1.5s` (at most 60 s)"
PERCENT_HINT = "a percentage from `0%` to `100%`, e.g. `1%` or `0.1%`"
RATE_HINT = ("a rate in tc's units: `bit`, `kbit`, `mbit`, `gbit`, `tbit` (bits/s) or `bps`, `kbps`, "
             "`mbps`, `gbps`, `tbps` (bytes/s: `1mbps` is `8mbit`), e.g. `rate: 10mbit`")


@dataclass(frozen=True)
class ImpairProblem:
    """A mistake in an `impair:` value: its diagnostic code, message and hint."""

    code: str
    message: str
    hint: str
    # The parameter a rule between parameters blames (`jitter`), so that the diagnostic points
    # at it rather than at the whole mapping; empty when the error is already at its value.
    field: str = ""

    def error(self) -> PydanticCustomError:
        # The message is the template's only placeholder: a `{` written in the file stays text.
        return PydanticCustomError("impair", "{message}", {"message": self.message, "problem": self})


@dataclass(frozen=True)
class Duration:
    """A delay or jitter in whole microseconds."""

    us: int
    text: str  # as written: `20ms`


@dataclass(frozen=True)
class Percentage:
    """A loss, duplication or corruption probability, 0-100."""

    percent: float
    text: str  # as written: `0.1%`


@dataclass(frozen=True)
class Rate:
    """A rate limit in bits per second (more than 0)."""

    bits_per_second: int
    text: str  # as written: `10mbit`


def _quantity(value: object, what: str, hint: str) -> tuple[Fraction, str, str]:
    """(number, unit in lower case, text) of a written quantity; raises for any other shape."""
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        shape = _SHAPES.get(type(value), type(value).__name__)
        raise ImpairProblem("type", f"expected {what}, got {shape}", hint).error()
    text = str(value)
    match = _QUANTITY.match(text)
    if match is None:
        raise ImpairProblem("impair-unit", f"`{text}` is not {what}", hint).error()
    unit = match["unit"].lower()
    if not unit:
        # tc reads a bare time in nanoseconds and a bare rate in bits/s, OVS policing here takes
        # kbit/s: the file says which.
        raise ImpairProblem("impair-unit", f"`{text}` has no unit", hint).error()
    return Fraction(match["number"]), unit, text


def duration(value: object) -> Duration:
    """`500us`, `20ms`, `1.5s` -> whole microseconds, 0 to 60 s."""
    number, unit, text = _quantity(value, "a time", TIME_HINT)
    if unit not in TIME_UNITS:
        raise ImpairProblem("impair-unit", f"`{text}`: unit `{unit}` is not one of us, ms, s",
                            TIME_HINT).error()
    us = number * TIME_UNITS[unit]
    if us.denominator != 1:
        raise ImpairProblem("impair-unit", f"`{text}` is not a whole number of microseconds",
                            TIME_HINT).error()
    if not 0 <= us <= MAX_DELAY_US:
        raise ImpairProblem("impair-range", f"`{text}` is out of range (0 to 60 s)",
                            _range_hint(text, unit, us)).error()
    return Duration(int(us), text)


def _range_hint(text: str, unit: str, us: Fraction) -> str:
    """Why a time is at most 60 s, with the `ms` that seconds may have been meant as."""
    if us < 0:
        return TIME_HINT
    as_ms = f"{text.strip()[:-1].rstrip()}ms"  # the unit is the last character when it is `s`
    meant = f": did you mean `{as_ms}`?" if unit == "s" and us / 1000 <= MAX_DELAY_US else ""
    return ("netem holds every packet for the delay (1000 in its queue, then it drops them): more than a "
            f"minute is almost always a unit mistake{meant}")


def percentage(value: object) -> Percentage:
    """`0.1%` -> 0.1; 0 to 100."""
    number, unit, text = _quantity(value, "a percentage", PERCENT_HINT)
    if unit != "%":
        raise ImpairProblem("impair-unit", f"`{text}`: a probability is written in `%`",
                            PERCENT_HINT).error()
    if not 0 <= number <= 100:
        raise ImpairProblem("impair-range", f"`{text}` is out of range (0% to 100%)",
                            PERCENT_HINT).error()
    return Percentage(float(number), text)


def rate(value: object) -> Rate:
    """`10mbit`, `1.5gbit`, `100kbps` -> whole bits per second, more than 0."""
    number, unit, text = _quantity(value, "a rate", RATE_HINT)
    if unit not in RATE_UNITS:
        raise ImpairProblem("impair-unit", f"`{text}`: unit `{unit}` is not one of "
                            f"{', '.join(RATE_UNITS)}", RATE_HINT).error()
    bits = number * RATE_UNITS[unit]
    if bits.denominator != 1:
        raise ImpairProblem("impair-unit", f"`{text}` is not a whole number of bits per second",
                            RATE_HINT).error()
    if bits <= 0:
        raise ImpairProblem("impair-range", f"`{text}`: a rate must be more than 0",
                            "leave `rate` out for no limit").error()
    if bits > MAX_RATE_BITS:
        raise ImpairProblem("impair-range", f"`{text}` is more than netem can take (2^64-1 bytes/s)",
                            "leave `rate` out for no limit").error()
    return Rate(int(bits), text)


def jitter_problem(delay: Duration | None, jitter: Duration | None) -> ImpairProblem | None:
    """Jitter varies the delay by up to its value each way, so it needs a delay at least as big.

    netem draws each packet's delay from delay ± jitter: with no delay or a smaller one, some
    draws are negative and netem sends those packets at once, so the delays are not what the
    file says. That is refused (an error, not a warning): the lab would measure something else.
    """
    if jitter is None:
        return None
    if delay is None:
        return ImpairProblem("impair-jitter-without-delay", f"jitter `{jitter.text}` without a delay",
                             f"add `delay:` of at least `{jitter.text}`: jitter varies the delay "
                             "by up to that much each way", "jitter")
    if jitter.us > delay.us:
        return ImpairProblem("impair-jitter-exceeds-delay",
                             f"jitter `{jitter.text}` is more than delay `{delay.text}`",
                             "netem draws each delay from delay ± jitter, and a negative draw is "
                             f"sent at once: make the jitter at most `{delay.text}`", "jitter")
    return None


_TIME_SCHEMA = {"type": "string", "pattern": r"^\s*[0-9]+(\.[0-9]+)?\s*([uUmM]?[sS])\s*$",
                "description": "a time: 500us, 20ms, 1.5s (at most 60 s)"}
_PERCENT_SCHEMA = {"type": "string", "pattern": r"^\s*[0-9]+(\.[0-9]+)?\s*%\s*$",
                   "description": "a percentage, 0% to 100%: 1%, 0.1%"}
_RATE_SCHEMA = {"type": "string",
                "pattern": r"^\s*[0-9]+(\.[0-9]+)?\s*[kKmMgGtT]?([bB][iI][tT]|[bB][pP][sS])\s*$",
                "description": "bit, kbit, mbit, gbit, tbit (bits/s) or bps, kbps, mbps, gbps, tbps "
                               "(bytes/s): 10mbit"}
DurationValue = Annotated[Duration, PlainValidator(duration), WithJsonSchema(_TIME_SCHEMA)]
PercentValue = Annotated[Percentage, PlainValidator(percentage), WithJsonSchema(_PERCENT_SCHEMA)]
RateValue = Annotated[Rate, PlainValidator(rate), WithJsonSchema(_RATE_SCHEMA)]
