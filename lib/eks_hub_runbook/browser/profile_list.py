"""The profiles the server-options page must list, from the z2jh values, and picking one.

The profile list lives in the base values file (``singleuser.profileList``); the login and
exposure overlays never change it, so the base file alone says what every hub offers.
The list is read by the platform (:func:`..platform.facts.profile_list`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from ..errors import PlatformError, RunbookError
from ..platform import facts
from ..platform.values import JUPYTERHUB_VALUES_DIR
from .results import Profile

BASE_VALUES = JUPYTERHUB_VALUES_DIR / "base.yaml"
TIME_SLICING_PROFILE = facts.default_profile()  # the walkthrough's profile: the one the hub preselects


def profiles(values_file: Path = BASE_VALUES) -> list[Profile]:
    """The profiles the hub offers, from the z2jh values (``singleuser.profileList``)."""
    try:
        items = facts.profile_list(Path(values_file))
    except PlatformError as exc:
        # name the profiles and the reader's own cause (OSError / YAMLError), as this module always has
        cause = exc.__cause__ or exc
        raise RunbookError(f"cannot read the hub's profiles from {values_file}: {cause}") from cause
    return [Profile(p["slug"], p["display_name"]) for p in items]


def find_profile(wanted: str, offered: Sequence[Profile]) -> Profile:
    """The offered profile whose slug or display name is ``wanted``; RunbookError naming the slugs if none."""
    for profile in offered:
        if wanted in (profile.slug, profile.display_name):
            return profile
    names = ", ".join(p.slug for p in offered) or "none"
    raise RunbookError(f"profile {wanted!r} is not one of the hub's profiles ({names}); pass a slug or a display name")
