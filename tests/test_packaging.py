"""What `pip install .` installs: every top-level module the package or a Hub folder imports, and every console script.

pytest runs from the repository root, where any top-level file imports; an installed package only has what setup.cfg
lists, so a Hub file missing from `py_modules` breaks `import adamae_hf` everywhere but here."""

import configparser
import importlib
from pathlib import Path


REPO_ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = {"run_pretrain", "run_finetune"}  # run from a checkout, not installed


def setup_options():
    parser = configparser.ConfigParser()
    parser.read(REPO_ROOT / "setup.cfg")
    return parser


def test_every_top_level_module_is_installed():
    listed = set(setup_options()["options"]["py_modules"].split())
    top_level = {path.stem for path in REPO_ROOT.glob("*.py")} - SCRIPTS
    assert listed == top_level, f"setup.cfg py_modules {sorted(listed)} vs top-level modules {sorted(top_level)}"


def test_every_console_script_points_at_a_main_function():
    entries = setup_options()["options.entry_points"]["console_scripts"].strip().splitlines()
    assert entries
    for entry in entries:
        name, target = (part.strip() for part in entry.split("="))
        module_name, function_name = target.split(":")
        assert callable(getattr(importlib.import_module(module_name), function_name)), name
