"""Packaging (issue 18 items 6 and 7): every imported package declared, dependency floors
at versions that work, TOML settings on Python 3.10, the licence and version declared once,
and an sdist whose test suite runs."""

from __future__ import annotations

import ast
import importlib.metadata
import os
import re
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.version import Version

import unmix
from unmix.errors import UnmixError
from unmix.train import configfile

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

REPO = Path(__file__).resolve().parents[1]
PROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]

#: the oldest versions that work, checked in throwaway venvs on 2026-12-06: av 12.0.0,
#: soundfile 0.13.0 and soxr 0.4.0 with NumPy 2.4 pass tests/audio; with NumPy 1.26.4, scipy
#: 1.10.1, safetensors 0.4.0 and tqdm 4.60.0 as well, tests/audio, tests/metrics, the hub
#: download/weight tests and the parity tests pass (torch: not checked below 2.13).
#: soundfile 0.12.1 rejects ``compression_level``; soxr 0.3.7 does not import with NumPy 2.
CHECKED_FLOORS = {
    "soundfile": "0.13",
    "soxr": "0.4",
    "av": "12",
    "numpy": "1.26",
    "scipy": "1.10",
    "safetensors": "0.4",
    "tqdm": "4.60",
}

#: import name -> distribution name, where they differ
DISTRIBUTIONS = {"yaml": "pyyaml", "python_multipart": "python-multipart", "PIL": "pillow"}


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _requirements() -> list[Requirement]:
    extras = PROJECT.get("optional-dependencies", {}).values()
    return [Requirement(r) for r in [*PROJECT["dependencies"], *(r for e in extras for r in e)]]


def _floor(name: str) -> Version | None:
    floors = [
        Version(s.version)
        for r in _requirements()
        if _norm(r.name) == name
        for s in r.specifier
        if s.operator in (">=", "==", "~=")
    ]
    return min(floors) if floors else None


def _third_party_imports() -> set[str]:
    names: set[str] = set()
    for path in (REPO / "src" / "unmix").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names.update(a.name.split(".")[0] for a in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module.split(".")[0])
    return {n for n in names if n not in sys.stdlib_module_names and n not in ("unmix", "tomli")}


def test_every_imported_package_is_declared() -> None:
    installed = importlib.metadata.packages_distributions()
    declared = {_norm(r.name) for r in _requirements()}
    missing = []
    for module in sorted(_third_party_imports()):
        candidates = {_norm(d) for d in installed.get(module, [])}
        candidates.add(_norm(DISTRIBUTIONS.get(module, module)))
        if not candidates & declared:
            missing.append(module)
    assert missing == [], f"imported but not declared in pyproject.toml: {missing}"


@pytest.mark.parametrize(("name", "checked"), sorted(CHECKED_FLOORS.items()))
def test_floors_are_versions_that_work(name: str, checked: str) -> None:
    floor = _floor(name)
    assert floor is not None and floor >= Version(checked), f"{name} floor {floor} < {checked}"


def test_toml_settings_work_on_every_declared_python() -> None:
    assert PROJECT["requires-python"] == ">=3.10"
    tomli = [r for r in map(Requirement, PROJECT["dependencies"]) if r.name == "tomli"]
    assert tomli and tomli[0].marker is not None
    assert tomli[0].marker.evaluate({"python_version": "3.10"})
    assert not tomli[0].marker.evaluate({"python_version": "3.11"})
    # every `import tomllib` in the package has the tomli fallback beside it
    for path in (REPO / "src" / "unmix").rglob("*.py"):
        text = path.read_text()
        if re.search(r"^\s*import tomllib", text, re.M):
            assert "import tomli as tomllib" in text, path


def test_yaml_settings_without_pyyaml_say_what_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "settings.yaml"
    path.write_text("epochs: 3\n")
    monkeypatch.setitem(sys.modules, "yaml", None)  # as if PyYAML were not installed
    with pytest.raises(UnmixError, match=r"pip install 'unmix\[yaml\]'"):
        configfile.read_file(path)


def test_scipy_is_imported_only_for_the_metrics() -> None:
    code = (
        "import sys, unmix.api, unmix.hub.loading, unmix.commands.separate, "
        "unmix.commands.train; print('scipy' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_licence_version_and_data_terms_are_declared_once() -> None:
    assert PROJECT["license"] == "MIT" and PROJECT["license-files"] == ["LICENSE"]
    assert (REPO / "LICENSE").read_text().startswith("MIT License")
    assert "version" not in PROJECT and PROJECT["dynamic"] == ["version"]
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    attr = pyproject["tool"]["setuptools"]["dynamic"]["version"]["attr"]
    assert attr == "unmix.__version__"
    assert importlib.metadata.version("unmix") == unmix.__version__
    assert "non-commercial" in PROJECT["description"]
    assert not re.search(r"^version:", (REPO / "CITATION.cff").read_text(), re.M)


SDIST_TEST_FILES = [
    "tests/conftest.py",
    "tests/helpers.py",
    "tests/fixtures.py",
    "tests/corpus.py",
    "tests/nnabla_files.py",
    "tests/ddp_worker.py",
    "tests/test_text.py",
    "examples/nightowl-preview.m4a",
    "LICENSE",
    "CHANGELOG.md",
    "CITATION.cff",
    "hubconf.py",
    "src/unmix/zoo/umx-preview/config.json",
]

IGNORE = shutil.ignore_patterns(
    ".git", "__pycache__", "*.egg-info", ".*_cache", ".hypothesis", "build", "dist"
)


@pytest.mark.slow
def test_the_sdist_holds_the_test_suite_and_its_tests_run(tmp_path: Path) -> None:
    source = tmp_path / "src-copy"
    shutil.copytree(REPO, source, ignore=IGNORE)
    build = (
        "import sys; from setuptools import build_meta; print(build_meta.build_sdist(sys.argv[1]))"
    )
    out = subprocess.run(
        [sys.executable, "-c", build, str(tmp_path / "dist")],
        cwd=source,
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    name = out.stdout.strip().splitlines()[-1]
    assert name == f"unmix-{unmix.__version__}.tar.gz"
    with tarfile.open(tmp_path / "dist" / name) as tar:
        members = {m.split("/", 1)[1] for m in tar.getnames() if "/" in m}
        tar.extractall(tmp_path / "unpacked", filter="data")
    assert set(SDIST_TEST_FILES) <= members, set(SDIST_TEST_FILES) - members
    assert not any("__pycache__" in m for m in members)
    root = tmp_path / "unpacked" / name.removesuffix(".tar.gz")
    env = {**os.environ, "PYTHONPATH": str(root / "src"), "OMP_NUM_THREADS": "1"}
    flags = ["-p", "no:cacheprovider", "-q"]
    pytest_cmd = [sys.executable, "-m", "pytest", *flags]
    collected = subprocess.run(
        [*pytest_cmd, "--collect-only", "tests"], cwd=root, env=env, capture_output=True, text=True
    )
    assert collected.returncode == 0, collected.stdout[-3000:]
    ran = subprocess.run(
        [
            *pytest_cmd,
            "tests/test_text.py",
            "tests/test_hubconf.py::test_the_hub_separator_is_load_separator",
        ],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
    )
    assert ran.returncode == 0 and " passed" in ran.stdout, ran.stdout[-3000:]
