"""What the browser walkthrough returns and raises: profiles, steps, journeys, the error.

Plain dataclasses, no browser needed: :class:`Walkthrough` turns the journeys into
screenshot captions, table rows and a run-record summary for a notebook.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import BrowserError


@dataclass(frozen=True)
class Profile:
    """One entry of the hub's server-options page."""

    slug: str
    display_name: str


@dataclass
class StepResult:
    """One page of one user's journey."""

    user: str
    step: str
    seconds: float
    screenshot: Path
    detail: str = ""


@dataclass
class UserJourney:
    """Everything one user saw and did."""

    user: str
    profile: Profile
    profiles_seen: list[str] = field(default_factory=list)
    steps: list[StepResult] = field(default_factory=list)
    listing: dict[str, list[str]] = field(default_factory=dict)
    mounts: dict[str, str] = field(default_factory=dict)  # listed folder -> file system (df -h)
    terminal_output: str = ""
    server_url: str = ""
    restarted: bool = False

    @property
    def seconds(self) -> float:
        """Time spent on all of this user's steps."""
        return sum(s.seconds for s in self.steps)


@dataclass
class Walkthrough:
    """The result of :func:`walkthrough`: one journey per user, screenshots in order."""

    hub_url: str
    auth: str
    profile: Profile
    journeys: list[UserJourney]
    out_dir: Path

    @property
    def screenshots(self) -> list[tuple[str, Path]]:
        """``(step, path)`` for every page, in the order they were taken (``"user-1 login"``...)."""
        return [(f"{s.user} {s.step}", s.screenshot) for j in self.journeys for s in j.steps]

    def rows(self) -> list[dict[str, Any]]:
        """One row per user and step: user, step, seconds, detail, screenshot file name."""
        return [
            {"user": s.user, "step": s.step, "seconds": round(s.seconds, 1), "detail": s.detail,
             "screenshot": s.screenshot.name}
            for j in self.journeys for s in j.steps
        ]

    def table(self):
        """:meth:`rows` as a pandas DataFrame."""
        import pandas as pd

        return pd.DataFrame(self.rows())

    def listing_rows(self) -> list[dict[str, Any]]:
        """What each user's terminal listed: user, folder, the file system ``df -h`` shows it on, entries."""
        return [
            {"user": j.user, "folder": folder, "mounted from": j.mounts.get(folder, "(not a mount)"),
             "entries": ", ".join(entries) or "(empty)"}
            for j in self.journeys for folder, entries in j.listing.items()
        ]

    def as_record(self) -> dict[str, Any]:
        """JSON-serialisable summary for a run record (paths relative to ``out_dir``)."""
        return {
            "hub_url": self.hub_url,
            "auth": self.auth,
            "profile": self.profile.slug,
            "users": [
                {
                    "user": j.user,
                    "profiles_seen": j.profiles_seen,
                    "listing": j.listing,
                    "mounts": j.mounts,
                    "restarted": j.restarted,
                    "seconds": round(j.seconds, 1),
                    "steps": [{"step": s.step, "seconds": round(s.seconds, 1), "detail": s.detail,
                               "screenshot": s.screenshot.name} for s in j.steps],
                }
                for j in self.journeys
            ],
        }

    def show(self, width: int = 512) -> None:
        """Display every screenshot with its caption (in a notebook)."""
        from IPython.display import HTML, Image, display

        for caption, path in self.screenshots:
            display(HTML(f"<b>{caption}</b>"), Image(filename=str(path), width=width))
