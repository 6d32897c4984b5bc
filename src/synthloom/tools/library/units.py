"""Unit conversion tools (self-contained: run in the sandbox from this source)."""

from __future__ import annotations

from typing import Literal

_LENGTH_M = {"mm": 0.001, "cm": 0.01, "m": 1.0, "km": 1000.0, "in": 0.0254, "ft": 0.3048,
             "mi": 1609.344}
_MASS_KG = {"g": 0.001, "kg": 1.0, "lb": 0.45359237, "oz": 0.028349523125}


def convert_length(value: float, from_unit: Literal["mm", "cm", "m", "km", "in", "ft", "mi"],
                   to_unit: Literal["mm", "cm", "m", "km", "in", "ft", "mi"]) -> float:
    """Convert a length between units.

    Args:
        value: The length.
        from_unit: Its unit.
        to_unit: The unit wanted.
    """
    return round(value * _LENGTH_M[from_unit] / _LENGTH_M[to_unit], 6)


def convert_mass(value: float, from_unit: Literal["g", "kg", "lb", "oz"],
                 to_unit: Literal["g", "kg", "lb", "oz"]) -> float:
    """Convert a mass between units.

    Args:
        value: The mass.
        from_unit: Its unit.
        to_unit: The unit wanted.
    """
    return round(value * _MASS_KG[from_unit] / _MASS_KG[to_unit], 6)


def convert_temperature(value: float, from_unit: Literal["C", "F", "K"],
                        to_unit: Literal["C", "F", "K"]) -> float:
    """Convert a temperature between Celsius, Fahrenheit and Kelvin.

    Args:
        value: The temperature.
        from_unit: Its scale.
        to_unit: The scale wanted.
    """
    celsius = {"C": value, "F": (value - 32) * 5 / 9, "K": value - 273.15}[from_unit]
    return round({"C": celsius, "F": celsius * 9 / 5 + 32, "K": celsius + 273.15}[to_unit], 4)
