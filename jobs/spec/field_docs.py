"""Field docstrings: the string written under each field of a spec model becomes that field's description (help
text, JSON schema, the docs' spec reference), as pydantic's ``use_attribute_docstrings`` would make it.

pydantic finds each class's source by walking the import's stack frames and tokenising the class (its
``inspect.getmodule`` lookup scans ``sys.modules`` once per frame): 50-80 ms of every command's start for the spec's
~25 models. Here each module is parsed once, after its classes exist; the models are built with ``defer_build``, so
their schemas (validation and JSON schema) are made on first use, with the descriptions in place.
"""

from __future__ import annotations

import ast
import inspect
import sys

from pydantic import BaseModel

_DOCS: dict[type, dict[str, str]] = {}
"""Per model class: its own fields' docstrings (inherited fields are looked up along the MRO)."""


def _class_docs(node: ast.ClassDef) -> dict[str, str]:
    """``name: type`` followed by a string, in a class body (pydantic's rule: the string right after the field)."""
    docs = {}
    for field, after in zip(node.body, node.body[1:], strict=False):
        if (isinstance(field, ast.AnnAssign) and isinstance(field.target, ast.Name) and isinstance(after, ast.Expr)
                and isinstance(after.value, ast.Constant) and isinstance(after.value.value, str)):
            docs[field.target.id] = inspect.cleandoc(after.value.value)
    return docs


def describe_fields(module_name: str) -> None:
    """Give every field of the module's pydantic models the docstring under it, unless it has a description."""
    module = sys.modules[module_name]
    tree = ast.parse(inspect.getsource(module))
    models = []
    for node in tree.body:
        cls = getattr(module, node.name, None) if isinstance(node, ast.ClassDef) else None
        if isinstance(cls, type) and issubclass(cls, BaseModel):
            _DOCS[cls] = _class_docs(node)
            models.append(cls)
    for cls in models:
        for name, field in cls.model_fields.items():
            if field.description is None:
                field.description = next((_DOCS[base][name] for base in cls.__mro__
                                          if name in _DOCS.get(base, {})), None)
