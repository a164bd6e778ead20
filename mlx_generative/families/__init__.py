"""The model families, and the registry that is the only place the generic code learns of them.

Each family is one home (see base.Family): ``ae.py``, ``vae.py``, ``ddpm/``, ``flow/`` and
the ``classifier.py`` that evaluation uses. Adding a family is one new module plus one
line in ``FAMILIES``.
"""

from __future__ import annotations

from ..errors import UsageError
from . import ae, classifier, ddpm, flow, vae
from .base import Family

FAMILIES: dict[str, Family] = {
    family.name: family for family in (ae.FAMILY, vae.FAMILY, ddpm.FAMILY, flow.FAMILY, classifier.FAMILY)
}


def get_family(name: str) -> Family:
    """The registered family called ``name``; UsageError naming the known ones otherwise."""
    family = FAMILIES.get(name)
    if family is None:
        raise UsageError(f"unknown model {name!r}; choose one of: {', '.join(FAMILIES)}")
    return family


def generative_names() -> list[str]:
    """The families that draw images (every one but the classifier)."""
    return [name for name, family in FAMILIES.items() if family.generative]


def names_of(has) -> str:
    """The families with a capability, for messages: "ae or vae", "ae, vae or ddpm"."""
    names = [name for name, family in FAMILIES.items() if has(family)]
    return " or ".join(names) if len(names) < 3 else ", ".join(names[:-1]) + " or " + names[-1]
