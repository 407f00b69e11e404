"""The upstream files carried in ``third_party/``: unchanged (checksums), each one listed in
SOURCES.md with its repository, tag, path and license, and shipped in the wheel."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from eks_hub_runbook import third_party

REPO_ROOT = Path(__file__).resolve().parents[1]


def carried_files() -> list[str]:
    base = third_party.folder()
    return sorted(str(p.relative_to(base)) for p in base.glob("*/*") if p.is_file() and p.parent.name != "__pycache__")


def test_every_carried_file_is_listed_once_and_every_row_names_a_file():
    listed = [row["file"] for row in third_party.sources()]
    assert len(listed) == len(set(listed)), "a file is listed twice in SOURCES.md"
    assert sorted(listed) == carried_files()


@pytest.mark.parametrize("row", third_party.sources(), ids=lambda row: row["file"])
def test_checksum_matches_sources(row):
    data = (third_party.folder() / row["file"]).read_bytes()
    assert hashlib.sha256(data).hexdigest() == row["sha256"], (
        f"{row['file']} differs from the upstream file recorded in SOURCES.md: "
        "copy the upstream file in unchanged, or update its row with the new tag and checksum"
    )


@pytest.mark.parametrize("row", third_party.sources(), ids=lambda row: row["file"])
def test_row_names_repository_tag_path_and_license(row):
    assert row["repository"].startswith("https://github.com/")
    assert row["license"] in ("Apache-2.0", "BSD-3-Clause")
    assert row["path"].endswith(Path(row["file"]).name)
    # the folder's version is the tag the row names
    assert row["file"].split("/")[0].endswith(row["tag"].lstrip("v"))


def test_missing_data_is_a_clear_error():
    with pytest.raises(FileNotFoundError, match="reinstall eks-hub-runbook"):
        third_party.file(third_party.Z2JH, "no-such-file.yaml")


@pytest.mark.slow
def test_the_wheel_carries_the_data(tmp_path):
    source = tmp_path / "source"  # a copy: building in the checkout would leave build/ behind
    shutil.copytree(REPO_ROOT / "lib", source / "lib", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO_ROOT / name, source / name)
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", str(tmp_path), str(source)],
                   check=True, capture_output=True, timeout=300)
    wheel = next(tmp_path.glob("eks_hub_runbook-*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    expected = {f"eks_hub_runbook/third_party/{name}" for name in carried_files()}
    assert expected <= names, sorted(expected - names)
    assert "eks_hub_runbook/third_party/SOURCES.md" in names
