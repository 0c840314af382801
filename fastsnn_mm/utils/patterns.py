"""One rule for "does this module path match a user's pattern".

Quantization surgery (``skip=``) and the converter's unconvertible check
(``skip=``) take the same patterns, so they read them the same way: a
pattern names a module and everything below it (``'layer1'`` covers
``'layer1.0.conv1'``), or is a shell-style pattern (``'layer2.*.relu'``).

Matching is case-sensitive (``fnmatchcase``): module paths are Python
attribute names, where ``Layer1`` and ``layer1`` are different modules. On
POSIX this is what ``fnmatch.fnmatch`` did as well; on Windows it would
have folded case.
"""
from fnmatch import fnmatchcase
from typing import Iterable


def path_matches(name: str, patterns: Iterable[str]) -> bool:
    """Whether module path ``name`` is, lies under, or fnmatches one of
    ``patterns``."""
    return any(name == p or name.startswith(p + '.') or fnmatchcase(name, p)
               for p in patterns)


def children_outside(model, patterns: Iterable[str], prefix: str = '',
                     _entered=None):
    """Yield ``(path, parent, attribute, child)`` for every place a
    submodule is registered, in registration order (pre-order), leaving out
    the paths ``patterns`` match and everything below them: the walk a
    surgery takes when it replaces children on their parents.

    Every slot of every parent's ``_modules`` is yielded, so a module
    registered twice (ERFNet puts one ReLU object at three places of a
    ``ModuleList`` and as ``act``) is seen at each place, where
    ``named_children()`` would list it once and leave the others behind;
    a module's own children are walked once, at its first place."""
    entered = set() if _entered is None else _entered
    for attr, child in model._modules.items():
        if child is None:
            continue
        path = f'{prefix}.{attr}' if prefix else attr
        if path_matches(path, patterns):
            continue
        yield path, model, attr, child
        if id(child) not in entered:
            entered.add(id(child))
            yield from children_outside(child, patterns, path, entered)
