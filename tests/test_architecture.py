"""The architecture the README's "Architecture" section draws, checked on the code itself: which package may import
which, no import circles (lazy imports inside functions count too), front doors that only import, and pages that
only lay out."""
from __future__ import annotations

import ast
import functools
from pathlib import Path

import pytest

from tests.helpers import ROOT

#: layer -> the layers it may import (besides itself). The README's table is this table.
ALLOWED: dict[str, set[str]] = {
    "core.base": set(),
    "core.datasets": {"core.base"},
    "core.modelling": {"core.base", "core.datasets"},
    "core.explainers": {"core.base", "core.modelling"},
    "core.quality": {"core.base", "core.modelling", "core.explainers"},
    "core.importers": {"core.base", "core.datasets", "core.modelling", "core.explainers"},
    "core.runs": {"core.base", "core.datasets", "core.modelling", "core.explainers", "core.quality"},
    "core.present": {"core.base", "core.datasets", "core.modelling", "core.explainers", "core.quality"},
    "core.faces": {"core.base", "core.datasets", "core.modelling", "core.explainers", "core.quality", "core.present",
                   "core.runs", "core.importers", "core"},
    "ui": {"core", "core.base", "core.datasets", "core.modelling", "core.explainers", "core.quality", "core.present",
           "core.runs", "core.importers"},
    "pages": {"ui", "core", "core.base", "core.datasets", "core.modelling", "core.explainers", "core.quality",
              "core.present", "core.runs", "core.importers"},
    "benchmarks": {"core", "core.base", "core.datasets", "core.modelling", "core.explainers", "core.quality",
                   "core.present", "core.runs", "core.faces", "core.importers"},
}
PACKAGES = ("core.datasets", "core.modelling", "core.explainers", "core.quality", "core.runs", "core.present",
            "core.importers", "core.faces")
#: libraries a page never imports: pages lay out, the library computes
COMPUTE_LIBRARIES = {"torch", "torchvision", "captum", "lime", "shap", "pytorch_grad_cam", "sklearn", "quantus"}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def sources() -> dict[str, Path]:
    files = [*ROOT.glob("core/**/*.py"), *ROOT.glob("ui/*.py"), *ROOT.glob("pages/*.py"), *ROOT.glob("benchmarks/*.py")]
    return {module_name(p): p for p in files}


@functools.cache
def parse(path: Path) -> ast.Module:
    """``ast.parse`` of a project file, once per process. CPython 3.11.7's AST constructor can raise a spurious
    ``SystemError: AST constructor recursion depth mismatch`` while other threads run (cpython#106905, fixed in
    3.11.8 and 3.12.1); threads that earlier tests in the same worker left finishing triggered it on CI. The parse is
    pure, so it is tried again: a real syntax error is a ``SyntaxError`` and still fails the first time."""
    for _ in range(4):
        try:
            return ast.parse(path.read_text())
        except SystemError as e:
            error = e
    raise error


def imports(name: str, path: Path) -> set[str]:
    """Every module ``name`` imports, at the top or inside functions, resolved against the project's modules."""
    known = sources()
    out = set()
    for node in ast.walk(parse(path)):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
                base = ".".join(package[: len(package) - node.level + 1] + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            for a in node.names:
                out.add(f"{base}.{a.name}" if f"{base}.{a.name}" in known else base)
    return out


def layer(module: str) -> str | None:
    for package in PACKAGES:
        if module == package or module.startswith(package + "."):
            return package
    if module == "core":
        return "core"
    if module == "core.__main__":  # ``python -m core``: the command line's entry point
        return "core.faces"
    if module.startswith("core."):
        return "core.base"  # the foundation: errors, config, registry, params, jobs, io, settings, cancel, version
    top = module.split(".")[0]
    return top if top in ("ui", "pages", "benchmarks") else None


def project_edges() -> dict[str, set[str]]:
    known = sources()
    return {m: {i for i in imports(m, p) if i in known and i != m} for m, p in known.items()}


def test_every_import_follows_the_layers():
    wrong = []
    for module, targets in project_edges().items():
        own = layer(module)
        if own == "core":  # the front door re-exports from any layer
            continue
        for t in targets:
            other = layer(t)
            if other != own and other not in ALLOWED[own]:
                wrong.append(f"{module} ({own}) imports {t} ({other})")
    assert not wrong, "\n".join(sorted(wrong))


def test_no_import_circles():
    """Between modules (a package's ``__init__`` importing its own modules does not count as a circle)."""
    edges = project_edges()
    edges = {m: {t for t in ts if not (m.startswith(t + ".") and (ROOT / t.replace(".", "/") / "__init__.py").exists())}
             for m, ts in edges.items()}
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(m: str) -> list[str] | None:
        state[m] = 1
        stack.append(m)
        for t in sorted(edges.get(m, ())):
            if state.get(t) == 1:
                return stack[stack.index(t):] + [t]
            if t not in state and (found := visit(t)):
                return found
        stack.pop()
        state[m] = 2
        return None

    for m in sorted(edges):
        if m not in state and (circle := visit(m)):
            pytest.fail("import circle: " + " -> ".join(circle))


def test_core_never_imports_the_faces_of_people_or_the_benchmarks():
    bad = [f"{m} imports {t}" for m, p in sources().items() if m.startswith("core")
           for t in imports(m, p) if t.split(".")[0] in ("streamlit", "ui", "pages", "benchmarks")]
    assert not bad, bad


def test_pages_only_lay_out():
    """No compute library in a page, and every page's ``main`` stays short (the work lives in ``ui`` and ``core``)."""
    for path in ROOT.glob("pages/*.py"):
        tree = parse(path)
        libs = {i.split(".")[0] for i in imports(module_name(path), path)}
        assert not libs & COMPUTE_LIBRARIES, (path.name, libs & COMPUTE_LIBRARIES)
        main = next(n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "main")
        assert main.end_lineno - main.lineno + 1 <= 50, f"{path.name}: main has {main.end_lineno - main.lineno + 1} lines"


@pytest.mark.parametrize("init", sorted(str(p.relative_to(ROOT)) for p in [*ROOT.glob("core/**/__init__.py"),
                                                                          ROOT / "ui" / "__init__.py"]))
def test_front_doors_only_import(init):
    """A package's ``__init__.py`` holds its docstring, imports and ``__all__`` (captum's and timm's habit)."""
    tree = parse(ROOT / init)
    for node in tree.body:
        ok = isinstance(node, (ast.Import, ast.ImportFrom)) or (
            isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str)) or (
            isinstance(node, (ast.Assign, ast.AnnAssign)) and all(
                isinstance(t, ast.Name) and t.id in ("__all__", "ROUTERS")
                for t in (node.targets if isinstance(node, ast.Assign) else [node.target])))
        assert ok, f"{init}:{node.lineno}: {ast.dump(node)[:80]}"


def test_declarations_are_keyword_only():
    """``Param`` takes its name, kind and default by position and everything else by keyword; a folder dataset is a
    keyword-only spec (as timm's ``PretrainedCfg``)."""
    from core.datasets.folders import FolderSpec
    from core.params import Param

    with pytest.raises(TypeError):
        Param("n", "int", 1, "help text", 0, 10)  # noqa: the positional form is gone
    with pytest.raises(TypeError):
        FolderSpec("x", "X", "x", 3, 64, "src", "lic", "desc")
    assert Param("n", "int", 1, min=0, max=10).validate(3) == 3
