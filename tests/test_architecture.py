"""The layout rules of docs/architecture.md, checked on the source tree."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "difhydro"


def _imports(path: Path) -> list[str]:
    """Absolute module names imported by ``path`` (relative imports resolved)."""
    tree = ast.parse(path.read_text())
    parts = path.relative_to(ROOT).with_suffix("").parts
    package = parts[:-1] if parts[-1] != "__init__" else parts[:-1]
    names = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                module = ".".join(base + ((node.module,) if node.module else ()))
                names += [module] + [f"{module}.{a.name}" for a in node.names]
            else:
                names.append(node.module)
    return names


SOURCES = sorted(PACKAGE.rglob("*.py"))


@pytest.mark.parametrize("path", [p for p in SOURCES if "contrib" not in p.parts], ids=lambda p: str(p.relative_to(ROOT)))
def test_the_core_does_not_import_contrib(path):
    bad = [m for m in _imports(path) if m.startswith("difhydro.contrib")]
    assert not bad, f"{path} imports {bad}"


@pytest.mark.parametrize("path", sorted((PACKAGE / "physics").rglob("*.py")), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_physics_imports_no_neural_code(path):
    bad = [m for m in _imports(path) if m.split(".")[0] in ("flax", "optax") or m.startswith(("difhydro.nn", "difhydro.hybrid"))]
    assert not bad, f"{path} imports {bad}"


def test_contrib_packages_do_not_import_each_other():
    for path in (PACKAGE / "contrib").rglob("*.py"):
        own = path.relative_to(PACKAGE / "contrib").parts[0]
        others = [m for m in _imports(path) if m.startswith("difhydro.contrib.") and m.split(".")[2] != own]
        assert not others, f"{path} imports {others}"


def test_docstrings_cite_the_repository_physics_page():
    text = "".join(p.read_text() for p in SOURCES)
    assert "process-models.md" not in text
    assert text.count("docs/physics.md") >= 10
    assert (ROOT / "docs" / "physics.md").is_file()
