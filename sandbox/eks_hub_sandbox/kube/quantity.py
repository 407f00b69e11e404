"""Kubernetes resource quantities: parse ("500m", "4Gi", "1e3") and format them back.

Quantities are compared as exact ``Fraction`` values so that sums of requests never
drift. ``canonical`` returns the string form a real API server stores, for the
common cases (integers stay integers, milli-values keep the ``m`` suffix).
"""

from __future__ import annotations

import re
from fractions import Fraction

_BINARY = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60}
_DECIMAL = {"n": Fraction(1, 10**9), "u": Fraction(1, 10**6), "m": Fraction(1, 1000), "": 1,
            "k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12, "P": 10**15, "E": 10**18}
_PATTERN = re.compile(r"^([+-]?[0-9.]+)([eE][+-]?[0-9]+|Ki|Mi|Gi|Ti|Pi|Ei|n|u|m|k|M|G|T|P|E)?$")


class QuantityError(ValueError):
    """A string is not a valid Kubernetes quantity."""


def parse(value: str | int | float) -> Fraction:
    """The exact numeric value of a quantity (``"250m"`` -> 1/4, ``"1Gi"`` -> 1073741824)."""
    if isinstance(value, bool):
        raise QuantityError(f"quantities must be numbers or strings, not {value!r}")
    if isinstance(value, int):
        return Fraction(value)
    if isinstance(value, float):
        return Fraction(str(value))
    match = _PATTERN.match(str(value).strip())
    if not match or match.group(1) in ("", ".", "+", "-"):
        raise QuantityError(f"quantities must match the regular expression "
                            f"'^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$', got {value!r}")
    number, suffix = match.group(1), match.group(2) or ""
    try:
        base = Fraction(number)
    except ValueError as exc:
        raise QuantityError(f"invalid quantity {value!r}") from exc
    if suffix[:1] in ("e", "E"):
        return base * Fraction(10) ** int(suffix[1:])
    if suffix in _BINARY:
        return base * _BINARY[suffix]
    return base * _DECIMAL[suffix]


def is_valid(value) -> bool:
    try:
        parse(value)
        return True
    except QuantityError:
        return False


def canonical(value: str | int | float) -> str:
    """The string a real API server returns for a quantity given as a number or a string.

    Numbers become strings (``4`` -> ``"4"``, ``0.5`` -> ``"500m"``); strings that are
    already valid quantities are returned unchanged.
    """
    if isinstance(value, str):
        parse(value)
        return value
    return format_cpu(parse(value))


def format_cpu(value: Fraction) -> str:
    """``Fraction(1, 2)`` -> ``"500m"``, ``Fraction(4)`` -> ``"4"``."""
    if value.denominator == 1:
        return str(value.numerator)
    milli = value * 1000
    if milli.denominator == 1:
        return f"{milli.numerator}m"
    return f"{int(round(float(value) * 10**9))}n"


def format_bytes(value: Fraction) -> str:
    """Bytes in the largest binary unit that keeps an integer (``"16Gi"``, ``"15532Mi"``)."""
    number = int(value)
    for suffix in ("Ei", "Pi", "Ti", "Gi", "Mi", "Ki"):
        unit = _BINARY[suffix]
        if number and number % unit == 0:
            return f"{number // unit}{suffix}"
    return str(number)


def format_for(resource: str, value: Fraction) -> str:
    """Format a quantity the way kubectl shows it for a resource name."""
    if resource in ("memory", "ephemeral-storage", "storage") or resource.startswith("hugepages-"):
        return format_bytes(value)
    return format_cpu(value)
