"""Issue 22: no import cycles inside ``etl_platform``, lazy imports counted.

Every ``import`` / ``from … import`` of every module is read from its source (inside functions and
``TYPE_CHECKING`` blocks too: a lazy import is still a dependency, it only fails later), module to module; the
graph must have no strongly connected component of more than one module. A cycle found names its modules.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "etl_platform"


def modules() -> dict[str, Path]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def imported(name: str, path: Path, known: dict[str, Path]) -> set[str]:
    """The ``etl_platform`` modules ``name`` imports, anywhere in its source."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    targets = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            targets.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parent, *([node.module] if node.module else [])])
            targets.update(f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base for alias in node.names)
    resolved = set()
    for target in targets:
        while target and target not in known:  # `etl_platform.x.y.Name` → the module `etl_platform.x.y`
            target = target.rpartition(".")[0]
        if target and target != name:
            resolved.add(target)
    return resolved


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iteratively)."""
    index, low, on_stack, stack, found, counter = {}, {}, set(), [], [], [0]
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter[0]
        counter[0] += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter[0]
                    counter[0] += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def test_the_cycle_finder_finds_a_cycle_through_a_lazy_import():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycles_inside_the_package():
    known = modules()
    graph = {name: imported(name, path, known) & known.keys() for name, path in known.items()}
    assert len(graph) > 100 and graph["etl_platform.destinations.delta"]  # the graph was really read
    assert not cycles(graph), "import cycles (lazy imports count): " + "; ".join(
        " ↔ ".join(component) for component in cycles(graph))


def test_every_reader_declares_its_protocol_settings_as_real_fields():
    """The jobs runner and ClientFactory ask the reader (``object_setting``, ``cursor_setting``, ``for_query``)
    instead of guessing field names or testing its class: each declared setting must be one of its fields, and a
    reader with a table, collection or index field must say which names its object."""
    from etl_platform.sources import SOURCES

    for name, source_class in SOURCES.items():
        fields = set(source_class.model_fields)
        for setting in (source_class.object_setting, source_class.cursor_setting):
            assert setting is None or setting in fields, f"{name}: {setting!r} is not a field"
        if fields & {"table", "collection", "index"}:
            assert source_class.object_setting in fields, f"{name} names no object_setting"
        if fields & {"cursor_column", "cursor_field"}:
            assert source_class.cursor_setting in fields, f"{name} names no cursor_setting"
        # What a run delivers (YAML jobs' target modes) agrees with how it lands in bronze (its default settings).
        plan = source_class.model_construct().landing_plan()
        assert (source_class.delivers == "changed_files") == (plan.mode == "replace_by_file"), name
        assert (source_class.delivers == "messages") == (plan.mode == "append" and plan.keys == ("_message_id",)), \
            name
    readers = (PACKAGE / "readers.py").read_text() + (PACKAGE / "jobs" / "runner.py").read_text()
    assert "isinstance(source," not in readers
