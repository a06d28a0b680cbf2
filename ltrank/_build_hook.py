"""Build hook (setuptools' build_py, named in pyproject.toml): bake the commit of the clone being
built into the package.

Run records name the commit of ltrank's code (``environment.git_sha``). From a clone that is
the checkout's HEAD; ``pip install .`` copies the code out of the clone, so the commit is
written into the built package (``ltrank/_build_info.json``) here, where git can still see it.
This module only runs at build time; the installed package never imports it.
"""

import json
import subprocess
from pathlib import Path

from setuptools.command.build_py import build_py

HERE = Path(__file__).resolve().parent.parent  # the source tree being built


def commit_info() -> dict:
    """{"git_sha": HEAD or None, "git_sha_note": why there is none, or None}."""
    if not (HERE / ".git").exists():
        return {"git_sha": None, "git_sha_note": "built from a source without git metadata (not a clone)"}
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=HERE, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError) as exc:
        return {"git_sha": None, "git_sha_note": f"built from a clone, but git could not be run ({exc})"}
    sha = out.stdout.strip()
    if out.returncode != 0 or not sha:
        return {"git_sha": None, "git_sha_note": "built from a clone, but git rev-parse failed"}
    return {"git_sha": sha, "git_sha_note": None}


class BuildPyWithCommit(build_py):
    """build_py, plus ltrank/_build_info.json with the commit."""

    def run(self) -> None:
        super().run()
        target = Path(self.build_lib) / "ltrank" / "_build_info.json"
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(json.dumps(commit_info()) + "\n", encoding="utf-8")
