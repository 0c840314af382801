"""The package imports only downwards: no cycle, and a floor plan.

Why: with a cycle, which module is half-initialised depends on who imports
first, and a newcomer cannot tell where a new piece belongs. The graph is
read from the source with ``ast`` (nothing is imported): every ``import``
and ``from ... import`` of ``fastsnn_mm``, at module level and inside
functions, relative or absolute. Importing ``a.b.c`` also runs ``a`` and
``a.b``; those parent-package runs are not edges (a package ``__init__``
re-exporting its children is the pattern, and the root sits on top).
Imports by name string (``importlib.import_module``) are not seen: the one
in ``models/__init__.py`` loads that package's own task subpackages.
"""
import ast
import os

import pytest

PACKAGE = 'fastsnn_mm'
ROOT = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(
    __file__))), PACKAGE)

#: Floors, lowest first. A module belongs to the longest entry that is its
#: name or a package above it; the root package only to itself. A module
#: may import from a lower floor, or sideways inside its own package.
LAYERS = (
    # registries, error types, facts about the mm task packages
    ('ground', ('fastsnn_mm.errors', 'fastsnn_mm.registry',
                'fastsnn_mm.tasks')),
    ('utils', ('fastsnn_mm.utils', )),
    ('quantization', ('fastsnn_mm.quantization', )),
    ('spiking', ('fastsnn_mm.spiking', )),
    ('models', ('fastsnn_mm.models', )),
    ('analysis and datasets', ('fastsnn_mm.analysis', 'fastsnn_mm.datasets')),
    ('engine', ('fastsnn_mm.engine', )),
    # what tools/*.py share; nothing in the package imports them
    ('tool support', ('fastsnn_mm.utils.launch',
                      'fastsnn_mm.utils.checkpoint_check')),
    # imports every part so that all registrations run
    ('set-up', ('fastsnn_mm.setup_env', )),
    ('package root', ('fastsnn_mm', )),
)
#: the ground floor imports nothing of the package
GROUND = LAYERS[0][1]


def package_modules(root=ROOT):
    """Dotted module name -> source path, for every ``.py`` of the package."""
    modules = {}
    base = os.path.dirname(root)
    for folder, _, files in os.walk(root):
        for name in files:
            if name.endswith('.py'):
                path = os.path.join(folder, name)
                parts = os.path.relpath(path, base)[:-3].split(os.sep)
                if parts[-1] == '__init__':
                    parts.pop()
                modules['.'.join(parts)] = path
    return modules


def _is_extension(modules, package, name):
    """A compiled module (``spiking/_if_kernel``): a leaf, not the package."""
    folder = os.path.dirname(modules[package])
    return any(f.startswith(name + '.') and not f.endswith('.py')
               for f in os.listdir(folder))


def imports_of(module, modules):
    """``[(imported module, line)]`` of the package that ``module`` names."""
    path = modules[module]
    is_package = path.endswith('__init__.py')
    here = module if is_package else module.rpartition('.')[0]
    with open(path) as f:
        tree = ast.parse(f.read(), path)

    def nearest(name):
        while name and name not in modules:
            name = name.rpartition('.')[0]
        return name

    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(nearest(a.name), node.lineno) for a in node.names
                      if a.name.split('.')[0] == PACKAGE]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = here.split('.')[:len(here.split('.')) - node.level + 1]
                target = '.'.join(parts + [node.module] * bool(node.module))
            else:
                target = node.module or ''
            if target.split('.')[0] != PACKAGE:
                continue
            for alias in node.names:
                child = f'{target}.{alias.name}'
                if child in modules:
                    found.append((child, node.lineno))
                elif target in modules and _is_extension(modules, target,
                                                         alias.name):
                    continue
                else:
                    found.append((nearest(target), node.lineno))
    return sorted(set(found))


def import_graph(root=ROOT):
    modules = package_modules(root)
    return {m: imports_of(m, modules) for m in modules}


def layer_of(module):
    """``(floor index, floor entry)`` of ``module``, or None if unplaced."""
    best = None
    for index, (_, entries) in enumerate(LAYERS):
        for entry in entries:
            inside = module == entry or (entry != PACKAGE and
                                         module.startswith(entry + '.'))
            if inside and (best is None or len(entry) > len(best[1])):
                best = (index, entry)
    return best


def cycles(graph):
    """One cycle per strongly connected group of modules (Tarjan)."""
    index, low, stack, on_stack, groups = {}, {}, [], set(), []

    def visit(node):
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target, _ in graph[node]:
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            group = set()
            while True:
                top = stack.pop()
                on_stack.discard(top)
                group.add(top)
                if top == node:
                    break
            if len(group) > 1 or any(t == node for t, _ in graph[node]):
                groups.append(group)

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return [_one_cycle(graph, group) for group in groups]


def _one_cycle(graph, group):
    """The shortest path from the group's first module back to itself, as
    ``['a:12', 'b:3', ..., 'a']`` (module:line of the import taken)."""
    start = min(group)
    paths = {start: []}
    queue = [start]
    while queue:
        node = queue.pop(0)
        for target, line in graph[node]:
            if target not in group:
                continue
            step = paths[node] + [f'{node}:{line}']
            if target == start:
                return step + [start]
            if target not in paths:
                paths[target] = step
                queue.append(target)
    return sorted(group)


def test_graph_reads_every_kind_of_import(tmp_path):
    """The reader itself, on a small package: relative and absolute,
    module and function level, a compiled module is a leaf, and a cycle is
    printed with the lines that make it."""
    root = tmp_path / PACKAGE
    (root / 'sub').mkdir(parents=True)
    files = {
        '__init__.py': 'from . import low\nfrom .sub import *\n',
        'low.py': 'import os\n',
        'sub/__init__.py': 'from .a import f\n',
        'sub/a.py': ('from .. import low\nfrom . import _ext\n'
                     'def f():\n    import fastsnn_mm.sub.b\n'),
        'sub/_ext.c': '',
        'sub/b.py': 'from fastsnn_mm.sub.a import f\n',
    }
    for name, text in files.items():
        (root / name).write_text(text)
    graph = import_graph(str(root))
    assert graph['fastsnn_mm'] == [('fastsnn_mm.low', 1),
                                   ('fastsnn_mm.sub', 2)]
    assert graph['fastsnn_mm.sub.a'] == [('fastsnn_mm.low', 1),
                                         ('fastsnn_mm.sub.b', 4)]
    assert cycles(graph) == [['fastsnn_mm.sub.a:4', 'fastsnn_mm.sub.b:1',
                              'fastsnn_mm.sub.a']]


def test_no_import_cycle():
    found = cycles(import_graph())
    assert not found, 'import cycles in fastsnn_mm:\n' + '\n'.join(
        ' -> '.join(cycle) for cycle in found)


@pytest.mark.parametrize('module', GROUND)
def test_ground_floor_imports_nothing_of_the_package(module):
    graph = import_graph()
    assert module in graph, f'{module} is gone: update LAYERS'
    assert graph[module] == [], (
        f'{module} is the ground floor every other module imports: it must '
        f'import nothing of {PACKAGE}, but imports {graph[module]}')


def test_every_module_has_a_floor():
    unplaced = sorted(m for m in import_graph() if layer_of(m) is None)
    assert not unplaced, (f'modules on no floor: {unplaced}; add their '
                          'package to LAYERS in this test')


def test_imports_go_down_or_sideways_within_a_package():
    graph = import_graph()
    upward = []
    for module, targets in sorted(graph.items()):
        floor, _ = layer_of(module)
        for target, line in targets:
            target_floor, _ = layer_of(target)
            same_package = module.split('.')[:2] == target.split('.')[:2]
            if target_floor > floor or (target_floor == floor and
                                        not same_package):
                upward.append(f'{module}:{line} ({LAYERS[floor][0]}) -> '
                              f'{target} ({LAYERS[target_floor][0]})')
    assert not upward, 'imports that do not go down:\n' + '\n'.join(upward)
