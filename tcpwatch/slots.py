"""Building frozen slotted dataclasses fast, for the records made by the ten thousand.

A frozen dataclass's __init__ costs one object.__setattr__ per field; storing through the
slot descriptors directly takes about half the time, which counts where a poll builds 50k
records, connections or events (`object.__new__(cls)`, then one setter per field).
"""

from __future__ import annotations

import dataclasses
from typing import Any


def slot_setters(cls: type, names: tuple[str, ...]) -> tuple[Any, ...]:
    """The slot descriptors' setters of the fields `names` of `cls`, in that order."""
    return tuple(cls.__dict__[name].__set__ for name in names)


def other_defaults(cls: type, names: tuple[str, ...]) -> tuple[tuple[Any, Any], ...]:
    """(setter, default) of every field of `cls` not in `names`: what a builder that sets
    only `names` must also store so that its objects are complete. TypeError when such a
    field has no plain default."""
    others = [field for field in dataclasses.fields(cls) if field.name not in names]
    for field in others:
        if field.default is dataclasses.MISSING:
            raise TypeError(f"{cls.__name__}.{field.name} needs a plain default value")
    return tuple((cls.__dict__[field.name].__set__, field.default) for field in others)


def all_slot_setters(cls: type, names: tuple[str, ...]) -> tuple[Any, ...]:
    """`slot_setters` for a builder that sets every field: TypeError unless `names` are
    exactly the fields of `cls`, in order (a field added later must be added there too)."""
    fields = tuple(field.name for field in dataclasses.fields(cls))
    if fields != names:
        raise TypeError(f"{cls.__name__} has fields {fields}, expected {names}")
    return slot_setters(cls, names)
