"""The package's imports point one way, as README's "Project layout" draws its layers.

Every import of a ``drcollab`` module (absolute or relative, at the top of a file or inside a function) is read
with ``ast``; each module belongs to the layer of its part of the package (``data`` for ``drcollab.data.io``,
``cli`` for ``drcollab.cli``, ``__init__`` for ``drcollab`` itself).
"""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = "drcollab"


def readme_layers(readme: str) -> list[set[str]]:
    """The layers, bottom up, from the paragraph of ``→`` arrows in README's "Project layout" section.

    Each step between arrows names its parts in backticks (``data/``, ``cli.py``); words in parentheses describe
    them and are skipped.
    """
    section = readme.split("\n## Project layout\n", 1)[1].split("\n## ", 1)[0]
    chains = [p for p in section.split("\n\n") if "→" in p]
    assert len(chains) == 1, f"README's Project layout should draw the layers in one paragraph, found {len(chains)}"
    chain = re.sub(r"\([^)]*\)", "", chains[0])
    return [{name.removesuffix("/").removesuffix(".py") for name in re.findall(r"`([\w./]+)`", step)}
            for step in chain.split("→")]


def modules(src: Path) -> dict[str, Path]:
    """Every module of the package under ``src`` by dotted name; a package is named by its ``__init__.py``."""
    out = {}
    for path in sorted((src / PACKAGE).rglob("*.py")):
        parts = path.relative_to(src).with_suffix("").parts
        out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return out


def imported(name: str, path: Path, known: dict[str, Path]) -> set[str]:
    """The package's modules that module ``name`` (file ``path``) imports; ``from M import x`` names ``M.x`` when
    that is a module, else ``M``."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            out |= {f"{target}.{a.name}" if f"{target}.{a.name}" in known else target for a in node.names}
    return {m for m in out if (m == PACKAGE or m.startswith(PACKAGE + ".")) and m != name}


def import_graph(src: Path) -> dict[str, set[str]]:
    """Module -> the package's modules it imports, for the package under ``src``."""
    known = modules(src)
    return {name: imported(name, path, known) for name, path in known.items()}


def part(module: str) -> str:
    """The part of the package a module belongs to: ``data`` for ``drcollab.data.io``, ``__init__`` for ``drcollab``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def upward_imports(graph: dict[str, set[str]], layers: list[set[str]]) -> list[str]:
    """Every import of a module from a higher layer, as ``"a (layer) imports b (layer)"``."""
    level = {p: i for i, layer in enumerate(layers) for p in layer}
    return [f"{a} ({part(a)}) imports {b} ({part(b)})" for a in sorted(graph) for b in sorted(graph[a])
            if level[part(b)] > level[part(a)]]


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The modules that import each other in a circle: strongly connected components of two or more (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    out = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while not component or component[-1] != v:
                component.append(stack.pop())
            if len(component) > 1:
                out.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return sorted(out)


def package_parts(src: Path) -> set[str]:
    """The package's subpackages and top-level modules (``__init__`` for the package's own file)."""
    return {part(m) for m in modules(src)}


def test_readme_gives_every_part_of_the_package_one_layer() -> None:
    layers = readme_layers((ROOT / "README.md").read_text())
    named = [p for layer in layers for p in layer]
    assert all(layers), f"a step of README's layer paragraph names no part: {layers}"
    assert len(named) == len(set(named)), f"a part sits in two layers: {layers}"
    assert set(named) == package_parts(ROOT / "src"), "README's layers and the package's parts differ"


def test_no_module_imports_from_a_higher_layer() -> None:
    layers = readme_layers((ROOT / "README.md").read_text())
    assert upward_imports(import_graph(ROOT / "src"), layers) == []


def test_no_modules_import_each_other_in_a_circle() -> None:
    assert circles(import_graph(ROOT / "src")) == []


def test_the_checks_find_upward_imports_and_circles(tmp_path: Path) -> None:
    files = {
        "__init__.py": "",
        "data/__init__.py": "",
        "data/a.py": "def f():\n    from ..training.b import g\n",  # relative, inside a function, upward
        "training/__init__.py": "",
        "training/b.py": "from drcollab.data import a\n",  # a module named in from-import; closes a circle
        "training/c.py": "from . import b\nimport drcollab\nimport numpy\n",
    }
    for name, text in files.items():
        (tmp_path / PACKAGE / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / PACKAGE / name).write_text(text)
    graph = import_graph(tmp_path)
    assert graph["drcollab.training.c"] == {"drcollab.training.b", "drcollab"}
    assert upward_imports(graph, [{"__init__"}, {"data"}, {"training"}]) == [
        "drcollab.data.a (data) imports drcollab.training.b (training)"]
    assert upward_imports(graph, [{"__init__"}, {"data", "training"}]) == []
    assert circles(graph) == [["drcollab.data.a", "drcollab.training.b"]]
    assert package_parts(tmp_path) == {"__init__", "data", "training"}


def test_readme_layers_skip_descriptions_and_group_parts() -> None:
    readme = ("# x\n\n## Project layout\n\nProse about `tests/x.py`.\n\n`a.py`, `b.py` (uses `c/`) → `c/` & `d/`\n"
              "→ `cli.py`.\n\n## Next\n\n`e/` → `f/`\n")
    assert readme_layers(readme) == [{"a", "b"}, {"c", "d"}, {"cli"}]


def test_the_losses_load_without_the_networks() -> None:
    """Losses and models share a layer, but the losses must not pull in the networks' backbone library."""
    code = (f"import sys; sys.path.insert(0, {str(ROOT / 'src')!r}); import drcollab.losses; "
            "print(drcollab.losses.__file__, 'timm' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.split() == [str(ROOT / "src/drcollab/losses/__init__.py"), "False"]
