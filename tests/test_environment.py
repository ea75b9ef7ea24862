"""pyproject.toml, environment.yml and the Makefile describe one environment, every requirement pinned."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest
import yaml
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name

if sys.version_info >= (3, 11):
    import tomllib
else:  # requires-python allows 3.10, whose standard library has no TOML reader
    tomllib = pytest.importorskip("tomli")

ROOT = Path(__file__).resolve().parents[1]
_PIN = re.compile(r"^(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)==(?P<version>[A-Za-z0-9][A-Za-z0-9.+!_-]*)$")


def pins(requirements: list[str], where: str) -> dict[str, str]:
    """``{canonical name: version}`` of ``name==version`` requirements; anything looser is an error."""
    out: dict[str, str] = {}
    for requirement in requirements:
        match = _PIN.match(requirement.strip())
        if match is None:
            raise ValueError(f"{where}: {requirement!r} is not pinned as name==version")
        name = canonicalize_name(match["name"])
        if name in out:
            raise ValueError(f"{where}: {name} is listed twice")
        out[name] = match["version"]
    return out


def pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def pyproject_pins() -> dict[str, str]:
    project = pyproject()["project"]
    requirements = list(project["dependencies"])
    for extra in project.get("optional-dependencies", {}).values():
        requirements += extra
    return pins(requirements, "pyproject.toml")


def environment() -> dict:
    return yaml.safe_load((ROOT / "environment.yml").read_text())


def environment_pins() -> dict[str, str]:
    pip = next(d["pip"] for d in environment()["dependencies"] if isinstance(d, dict) and "pip" in d)
    return pins([r for r in pip if not r.startswith("-e")], "environment.yml")


def makefile_pins(no_deps: bool) -> dict[str, str]:
    """Pins on the Makefile's ``pip install`` lines, those with ``--no-deps`` or those without."""
    found: dict[str, str] = {}
    for line in (ROOT / "Makefile").read_text().splitlines():
        if "install" not in line or line.lstrip().startswith("#") or ("--no-deps" in line) != no_deps:
            continue
        found.update(pins([t for t in line.split() if "==" in t], "Makefile"))
    return found


def test_pins_parser_known_answers():
    parsed = pins(["torch==2.13.0", "Scikit_Image==0.26.0"], "x")
    assert parsed == {"torch": "2.13.0", "scikit-image": "0.26.0"}
    with pytest.raises(ValueError, match="'numpy>=2' is not pinned"):
        pins(["numpy>=2"], "x")
    with pytest.raises(ValueError, match="listed twice"):
        pins(["a==1", "A==2"], "x")


def test_every_pyproject_pin_is_in_environment_yml_and_vice_versa():
    project, env = pyproject_pins(), environment_pins()
    no_deps = makefile_pins(no_deps=True)  # installed by the Makefile alone: pyproject cannot name them
    expected = {**project, **no_deps}
    missing = {k: v for k, v in expected.items() if env.get(k) != v}
    extra = {k: v for k, v in env.items() if k not in expected}
    assert not missing, f"environment.yml lacks or differs on {missing}"
    assert not extra, f"environment.yml pins {extra}, which pyproject.toml and the Makefile do not"
    assert not set(no_deps) & set(project), "a --no-deps package is also a declared dependency"


def test_torch_is_pinned_and_installed_first_at_that_version():
    project = pyproject_pins()
    assert "torch" in project and "torchvision" in project
    assert makefile_pins(no_deps=False) == {"torch": project["torch"]}


def test_environment_python_satisfies_requires_python():
    python = next(d for d in environment()["dependencies"] if isinstance(d, str) and d.startswith("python="))
    version = python.split("=", 1)[1]
    assert version in SpecifierSet(pyproject()["project"]["requires-python"])
