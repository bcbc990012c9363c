"""pyproject.toml's requires-python is the Python the code needs: the running one satisfies it, and no file
uses syntax or standard-library names newer than it, nor needs a newer one than it states."""

import ast
import pathlib
import re
import sys
import tomllib

ROOT = pathlib.Path(__file__).resolve().parents[1]
SKIP = {".venv", ".git", "shared", "node_modules"}
#: standard-library names and the Python that added them (those this code may plausibly reach for)
ADDED = {
    "hashlib.file_digest": (3, 11), "tomllib": (3, 11), "datetime.UTC": (3, 11), "ExceptionGroup": (3, 11),
    "BaseExceptionGroup": (3, 11), "typing.Self": (3, 11), "enum.StrEnum": (3, 11), "asyncio.TaskGroup": (3, 11),
    "asyncio.timeout": (3, 11), "contextlib.chdir": (3, 11), "operator.call": (3, 11), "typing.assert_never": (3, 11),
    "itertools.batched": (3, 12), "typing.override": (3, 12), "math.sumprod": (3, 12), "sys.monitoring": (3, 12),
    "os.process_cpu_count": (3, 13), "copy.replace": (3, 13), "warnings.deprecated": (3, 13),
    "aiter": (3, 10), "anext": (3, 10), "EncodingWarning": (3, 10),
    "itertools.pairwise": (3, 10), "zip.strict": (3, 10),
}


def _minimum():
    spec = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["requires-python"]
    match = re.fullmatch(r">=\s*3\.(\d+)", spec.strip())
    assert match, f"requires-python should be '>=3.N', got {spec!r}"
    return 3, int(match.group(1))


def _sources():
    return [p for p in ROOT.rglob("*.py") if not SKIP & set(p.relative_to(ROOT).parts)]


def _names(tree):
    """Dotted names a module uses: ``module.attr`` attributes, imports, bare names, and ``zip(..., strict=)``."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
            yield f"{node.value.id}.{node.attr}"
        elif isinstance(node, ast.Name):
            yield node.id
        elif isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            yield node.module
            yield from (f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Call) and getattr(node.func, "id", None) == "zip":
            yield from ("zip.strict" for k in node.keywords if k.arg == "strict")


def test_the_running_python_satisfies_requires_python():
    assert sys.version_info[:2] >= _minimum(), f"requires-python is >={_minimum()}, running {sys.version}"


def test_no_file_uses_syntax_newer_than_requires_python():
    minimum = _minimum()
    sources = _sources()
    assert len(sources) > 20
    for path in sources:
        ast.parse(path.read_text(), str(path), feature_version=minimum)  # a SyntaxError names the file and line


def test_no_file_uses_a_standard_library_name_newer_than_requires_python():
    minimum, used = _minimum(), {}
    for path in _sources():
        for name in _names(ast.parse(path.read_text())):
            if name in ADDED:
                used.setdefault(name, str(path.relative_to(ROOT)))
    newer = {name: where for name, where in used.items() if ADDED[name] > minimum}
    assert not newer, f"these need a Python newer than requires-python >={minimum}: {newer}"
    needed = max((ADDED[name] for name in used), default=(3, 0))
    assert needed == minimum, f"requires-python says >={minimum}, but the code needs only >={needed}: lower it"
