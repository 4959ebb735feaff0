"""The project's set-up files agree with each other."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
CONDA_NAMES = {"duckdb": "python-duckdb"}


def _requirements() -> dict[str, str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    reqs = project["dependencies"] + project["optional-dependencies"]["dev"]
    out = {}
    for req in reqs:
        name, spec = re.match(r"([A-Za-z0-9_.-]+)\s*(.*)", req).groups()
        out[CONDA_NAMES.get(name.lower(), name.lower())] = spec.replace(" ", "")
    return out


def test_environment_yml_pins_what_pyproject_pins():
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    listed = {}
    for dep in env["dependencies"]:
        if isinstance(dep, str):
            name, spec = re.match(r"([A-Za-z0-9_.-]+)\s*(.*)", dep).groups()
            listed[name.lower()] = spec.replace(" ", "")
    assert {k: listed.get(k) for k in _requirements()} == _requirements()
    assert listed["python"] == ">=3.11"
    text = (ROOT / "environment.yml").read_text()
    for line in text.split("dependencies:", 1)[1].splitlines():
        item = line.split("#")[0].strip()
        if item.startswith("- ") and item not in ("- pip", "- pip:"):
            assert "#" in line, f"environment.yml: every pin is commented: {line.strip()}"


def test_ci_runs_make_test_then_the_orchestrator_proof():
    lines = [x for x in (ROOT / ".ci" / "run").read_text().splitlines()
             if x.strip() and not x.startswith("#")]
    assert [x.strip() for x in lines[-2:]] == ["make test", "make orchestrators"]


def _pins() -> dict[str, str]:
    pins = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, version = line.split("==")
            pins[re.sub(r"[-_.]+", "-", name).lower()] = version.strip()
    return pins


def test_the_lock_pins_every_requirement_within_its_range():
    """constraints.txt holds one exact version per package, each inside pyproject's range, and
    the conda environment and the Makefile install through it."""
    from packaging.specifiers import SpecifierSet

    pins = _pins()
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    for req in project["dependencies"] + project["optional-dependencies"]["dev"]:
        name, spec = re.match(r"([A-Za-z0-9_.-]+)\s*(.*)", req).groups()
        key = re.sub(r"[-_.]+", "-", name).lower()
        assert key in pins, f"constraints.txt does not pin {name}; run make lock"
        assert pins[key] in SpecifierSet(spec), f"{name}=={pins[key]} is outside {spec!r}"
    assert "-c constraints.txt" in (ROOT / "environment.yml").read_text()
    assert "-c constraints.txt -e '.[dev]'" in (ROOT / "Makefile").read_text()


def test_the_lock_matches_this_environment():
    """The versions installed here are the locked ones (a stale lock would test something else)."""
    from importlib import metadata

    for name in ("duckdb", "pandas", "nbclient", "ipywidgets", "jupyterlab", "pyyaml"):
        assert metadata.version(name) == _pins()[name], f"{name}: run make lock or make test"
