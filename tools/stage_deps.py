"""The project modules each DVC stage runs: the import closure of its script (see tests/test_dvc_deps.py).

    .venv/bin/python tools/stage_deps.py            # print each stage's code deps, folders where complete
    .venv/bin/python tools/stage_deps.py --write    # put them into dvc.yaml (other deps stay as they are)

The closure follows `import` statements anywhere in a module (inside functions too), adds the package
`__init__` files an import runs, and sibling files a module names as "x.py" (the models-from-code entry
that MLflow loads by path).
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
PACKAGE = "comic"


def _module_file(name: str) -> Path | None:
    base = REPO.joinpath(*name.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def imported_files(path: Path) -> set[Path]:
    """Project files that `path` imports or names as a sibling `.py`, with the `__init__` files run."""
    found: set[Path] = set()
    names: list[str] = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names += [node.module, *(f"{node.module}.{alias.name}" for alias in node.names)]
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value.endswith(".py"):
            if "/" not in node.value and (path.parent / node.value).is_file():
                found.add(path.parent / node.value)
    for name in names:
        parts = name.split(".")
        if parts[0] != PACKAGE:
            continue
        for depth in range(1, len(parts) + 1):  # importing a.b.c runs a/__init__.py and a/b/__init__.py
            file = _module_file(".".join(parts[:depth]))
            if file is not None:
                found.add(file)
    return found


def closure(script: Path) -> set[Path]:
    """`script` and every project file it runs."""
    seen: set[Path] = set()
    todo = [script]
    while todo:
        path = todo.pop()
        if path not in seen:
            seen.add(path)
            todo += imported_files(path) - seen
    return seen


def stage_script(stage: dict) -> Path:
    words = stage["cmd"].split()
    return REPO / words[words.index("python") + 1]


def declared_code(stage: dict) -> set[Path]:
    """The `.py` files a stage's deps name, folders expanded."""
    files: set[Path] = set()
    for dep in stage.get("deps", []):
        path = REPO / dep
        files |= set(path.rglob("*.py")) if path.is_dir() else {path} if path.suffix == ".py" else set()
    return files


def compact(files: set[Path]) -> list[str]:
    """Repository-relative paths, a folder in place of its files where every file of it is there."""
    out, covered = [], set()
    folders = sorted({p.parent for p in files if p.parent != REPO / PACKAGE}, key=lambda p: len(p.parts))
    for folder in folders:
        inside = set(folder.rglob("*.py"))
        if inside <= files and not any(f in covered for f in inside):
            out.append(folder.relative_to(REPO).as_posix())
            covered |= inside
    out += [p.relative_to(REPO).as_posix() for p in files - covered]
    return sorted(out, key=lambda d: (not d.startswith("pipelines/"), d))


def is_code(dep: str) -> bool:
    path = REPO / dep
    return path.suffix == ".py" or (path.is_dir() and any(path.rglob("*.py")))


def rewrite(text: str, stages: dict) -> str:
    """dvc.yaml's text with each stage's code deps replaced by its closure; comments and the rest kept."""
    lines, out, stage = text.splitlines(keepends=True), [], None
    i = 0
    while i < len(lines):
        line = lines[i]
        name = line.strip().rstrip(":")
        if line.startswith("  ") and not line.startswith("   ") and name in stages:
            stage = name
        if stage and line.strip() == "deps:":
            out.append(line)
            i += 1
            indent = lines[i][: len(lines[i]) - len(lines[i].lstrip())]
            old = []
            while i < len(lines) and lines[i].startswith(f"{indent}- "):
                old.append(lines[i].strip()[2:])
                i += 1
            kept = [d for d in old if not is_code(d)]
            out += [f"{indent}- {d}\n" for d in compact(closure(stage_script(stages[stage]))) + kept]
            continue
        out.append(line)
        i += 1
    return "".join(out)


def main() -> None:
    path = REPO / "dvc.yaml"
    stages = yaml.safe_load(path.read_text())["stages"]
    if "--write" in sys.argv[1:]:
        path.write_text(rewrite(path.read_text(), stages))
        return
    for name, stage in stages.items():
        print(f"{name}:")
        for dep in compact(closure(stage_script(stage))):
            print(f"  - {dep}")


if __name__ == "__main__":
    sys.exit(main())
