"""The layout holds: no import circle among repro/ and experiments/ (imports inside functions
count: they only postpone a circle); the package that `pip install .` builds carries the native
code's sources, which it compiles on first use; and Python reads the numbers it shares with the C
code from repro/native/codes.h, never from a copy."""
import ast
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from repro import native
from repro.provenance import library_sha256

ROOT = Path(__file__).resolve().parents[1]


def modules():
    """{module name: its file}: repro's as a package (repro.native is repro/native/__init__.py), the
    scripts of experiments/ by their bare names, as they import one another."""
    found = {}
    for path in sorted((ROOT / "repro").rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    found.update({path.stem: path for path in sorted((ROOT / "experiments").glob("*.py"))})
    return found


def imports(name, path, known):
    """The modules of `known` that module `name` imports anywhere in its file: `from X import y`
    imports X.y where that is a module, else X."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = ".".join(package.split(".")[:len(package.split(".")) - node.level + 1]) if node.level else ""
            base = ".".join(filter(None, [base, node.module]))
            targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base for alias in node.names]
        else:
            continue
        out.update(t for t in targets if t in known and t != name)
    return out


def circles(graph):
    """Every import circle of `graph` ({module: modules it imports}) as a list of modules, each found
    once, from a depth-first walk."""
    found, state = [], {}  # state: 1 on the current path, 2 done

    def walk(node, path):
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                found.append(path[path.index(nxt):] + [nxt])
            elif nxt not in state:
                walk(nxt, path + [nxt])
        state[node] = 2
    for node in sorted(graph):
        if node not in state:
            walk(node, [node])
    return found


def test_no_import_circle_among_the_library_and_the_scripts():
    known = modules()
    graph = {name: imports(name, path, known) for name, path in known.items()}
    assert graph["readme"] >= {"reproduce", "bench", "figures", "blocks"}  # the walk sees what it should
    assert "repro.versions" in graph["repro.data"]
    assert not circles(graph), "import circles: " + "; ".join(" -> ".join(c) for c in circles(graph))


def test_the_walk_finds_a_circle_through_a_function_level_import(tmp_path):
    (tmp_path / "a.py").write_text("import b\n")
    (tmp_path / "b.py").write_text("def f():\n    from a import g\n")
    known = {"a": tmp_path / "a.py", "b": tmp_path / "b.py"}
    assert circles({n: imports(n, p, known) for n, p in known.items()}) == [["a", "b", "a"]]


def test_the_wheel_carries_every_source_of_the_native_code(tmp_path):
    """A non-editable install compiles repro/native/*.c with its headers on first use: all must ship."""
    source = tmp_path / "source"  # a copy, so that the build leaves no build/ or egg-info in the checkout
    shutil.copytree(ROOT / "repro", source / "repro", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", source)
    done = subprocess.run([sys.executable, "-m", "pip", "wheel", str(source), "--no-deps", "--no-build-isolation",
                           "--no-index", "-q", "-w", str(tmp_path / "dist")], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    [wheel] = (tmp_path / "dist").glob("*.whl")
    shipped = set(zipfile.ZipFile(wheel).namelist())
    native = {p.relative_to(ROOT).as_posix() for p in (ROOT / "repro" / "native").iterdir() if p.suffix in (".c", ".h")}
    assert {"repro/native/lenet5_step.c", "repro/native/network_step.c", "repro/native/numerics.h",
            "repro/native/codes.h"} <= native
    assert native <= shipped, f"missing from the wheel: {sorted(native - shipped)}"


def test_the_library_hash_covers_the_code_in_subpackages(tmp_path):
    """The native code lives in repro/native/: a run's library hash must change with its C sources."""
    lib = tmp_path / "repro"
    (lib / "native").mkdir(parents=True)
    (lib / "native" / "step.c").write_text("int x;\n")
    before = library_sha256(lib)
    (lib / "native" / "step.c").write_text("int y;\n")
    assert library_sha256(lib) != before


def test_python_reads_the_codes_it_shares_with_the_c_code_from_codes_h(monkeypatch):
    assert native.CODES["subsampling"] == {"trainable": 0, "average": 1, "max": 2}
    assert native.SLOTS[0] == "c1.weight" and native.SLOTS[-1] == "output.bias"
    assert len(native.SLOTS) == native.C_CODES["SLOTS"]
    native.check_codes()  # the committed codes.h codes every choice of repro.config that the C code reads
    monkeypatch.setitem(native.CHOICES, "activation", (*native.CHOICES["activation"], "gelu"))
    with pytest.raises(native.NativeUnavailable, match=r"give each choice its ACTIVATION_<VALUE> in codes.h"):
        native.check_codes()
