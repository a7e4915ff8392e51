"""The declared minimum versions are the ones CI proves: setup.cfg's lower bounds equal the pins of .ci/floors.txt,
which `.ci/run` installs in a second environment before running the suite there."""

import configparser
import os
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

from configuration_adamae import MIN_TRANSFORMERS_VERSION


REPO_ROOT = Path(__file__).resolve().parents[1]


def declared_lower_bounds():
    """{package: lower bound} over setup.cfg's install_requires and test extras; each must have exactly one `>=`."""
    parser = configparser.ConfigParser()
    parser.read(REPO_ROOT / "setup.cfg")
    lines = parser["options"]["install_requires"].splitlines() + parser["options.extras_require"]["test"].splitlines()
    bounds = {}
    for line in lines:
        if not line.strip() or line.strip().startswith("#"):
            continue
        requirement = Requirement(line)
        lower = [specifier.version for specifier in requirement.specifier if specifier.operator == ">="]
        assert len(lower) == 1, f"setup.cfg: {line.strip()!r} needs one lower bound (>=) that CI can pin and test"
        bounds[canonicalize_name(requirement.name)] = Version(lower[0])
    return bounds


def pinned_floors():
    """{package: version} from .ci/floors.txt, where every line is `name==version`."""
    pins = {}
    for line in (REPO_ROOT / ".ci" / "floors.txt").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            requirement = Requirement(line)
            (specifier,) = requirement.specifier
            assert specifier.operator == "==", f".ci/floors.txt: {line!r} must pin one exact version"
            pins[canonicalize_name(requirement.name)] = Version(specifier.version)
    return pins


def test_every_declared_lower_bound_is_pinned_in_the_ci_floors_file():
    assert declared_lower_bounds() == pinned_floors()


def test_the_packages_own_transformers_check_names_the_declared_floor():
    assert Version(MIN_TRANSFORMERS_VERSION) == declared_lower_bounds()["transformers"]


@pytest.mark.skipif(os.environ.get("ADAMAE_AT_FLOORS") != "1", reason="runs in .ci/run's minimum-versions environment")
def test_this_environment_holds_exactly_the_floors():
    installed = {name: Version(Version(metadata.version(name)).public) for name in pinned_floors()}
    assert installed == pinned_floors()
