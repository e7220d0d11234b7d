"""The layering the package promises, enforced on every import statement of its source.

Data flows one way (sources -> raw -> typed -> derived -> stores) and only the Dagster code location and
the command line know Dagster: a module that breaks either rule fails here, naming the file, the line
and the import, so the layout stays the one a reader expects.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "strava_pipeline"

#: Which of our own packages each package may import (besides itself). ``None``: anything of ours.
ALLOWED: dict[str, set[str] | None] = {
    "settings": set(),
    "simulator": set(),  # a Strava of our own: it must work without the pipeline it serves
    "storage": set(),  # Parquet and PostgreSQL: knows nothing of Strava
    "strava": {"storage"},  # the token store writes through storage.files
    "export": {"transforms", "storage"},
    "transforms": set(),
    "report": {"transforms"},
    "ingest": {"settings", "strava", "export", "transforms", "storage"},
    "defs": {"settings", "strava", "export", "transforms", "report", "storage", "ingest", "fittrackee"},
    "fittrackee": {"storage"},  # a FitTrackee client and sink: no Strava, no Dagster
    "cli": None,
    "definitions": {"defs", "settings"},
}

#: Only these may import dagster (or dagster_* packages).
DAGSTER_ALLOWED = {"defs", "cli", "definitions"}


def _layer(path: Path, package: Path = PACKAGE) -> str:
    return path.relative_to(package).with_suffix("").parts[0]


def imports_of(path: Path, root: Path = PACKAGE) -> list[tuple[int, str]]:
    """(line, module) of every import in a source file under ``root``, relative imports resolved."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    package = ".".join(("strava_pipeline", *path.relative_to(root).with_suffix("").parts[:-1]))
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join([*base, *([node.module] if node.module else [])])
            else:
                module = node.module or ""
            found.append((node.lineno, module))
    return found


def violations(package: Path = PACKAGE) -> list[str]:
    """Every import that breaks the layering, as 'file:line imports module (why)'."""
    problems = []
    for path in sorted(package.rglob("*.py")):
        layer = _layer(path, package)
        if layer == "__init__":
            continue
        allowed = ALLOWED[layer]
        where = path.relative_to(package.parent)
        for line, module in imports_of(path, package):
            top = module.split(".")[0]
            if (top == "dagster" or top.startswith("dagster_")) and layer not in DAGSTER_ALLOWED:
                problems.append(f"{where}:{line} imports {module} (only defs/, cli/ and definitions.py use Dagster)")
            if top != "strava_pipeline" or allowed is None:
                continue
            target = module.split(".")[1] if "." in module else ""
            if target and target != layer and target not in allowed:
                problems.append(f"{where}:{line} imports {module} ({layer} may import only {sorted(allowed)})")
    return problems


def test_every_package_has_a_rule() -> None:
    layers = {_layer(p) for p in PACKAGE.rglob("*.py")} - {"__init__"}
    assert layers <= set(ALLOWED), f"no layering rule for {sorted(layers - set(ALLOWED))}"


def test_the_layering_holds() -> None:
    assert violations() == []


def test_nothing_imports_the_code_location_leaf() -> None:
    """``definitions.py`` builds the definitions from the environment on import: only Dagster loads it."""
    users = [
        f"{p.relative_to(PACKAGE.parent)}:{line}"
        for p in PACKAGE.rglob("*.py")
        for line, module in imports_of(p)
        if module == "strava_pipeline.definitions"
    ]
    assert users == []


@pytest.mark.parametrize(
    ("relative", "source", "expected"),
    [
        ("transforms/leak.py", "import dagster as dg\n", "only defs/, cli/ and definitions.py use Dagster"),
        ("storage/leak.py", "from strava_pipeline.strava import StravaClient\n", "storage may import only []"),
        ("simulator/leak.py", "from ..transforms import fields\n", "simulator may import only []"),
    ],
)
def test_a_forbidden_import_is_reported(tmp_path: Path, relative: str, source: str, expected: str) -> None:
    """The rules fail when broken: a copy of the package with one bad import is reported, file and line."""
    copy = tmp_path / "strava_pipeline"
    (copy / relative).parent.mkdir(parents=True)
    (copy / relative).write_text(source, encoding="utf-8")
    found = violations(copy)
    assert len(found) == 1
    assert found[0].startswith(f"strava_pipeline/{relative}:1 imports ") and expected in found[0]
