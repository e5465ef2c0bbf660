"""Which request parameters each view reads, found in its source (tests/test_tenancy_every_url.py).

For every URL the view function (decorators unwrapped) is parsed, and so are the functions it
calls, in its own module or in any of the studio's apps, with the request or its GET/POST data. A
read is `request.GET.get("k")`, `request.POST.getlist("k")`, `request.GET["k"]`, `"k" in
request.POST`, the same on a parameter that was handed request.GET/POST, or a form bound to that
data whose field `k` holds an object id (a model choice or a UUID field).
"""

from __future__ import annotations

import ast
import functools
import inspect
import sys
import textwrap
import types
from collections.abc import Callable
from typing import Any

from django import forms

PROJECT_MODULES = ("studio.", "campaigns.", "generation.")
ID_FIELDS = (
    forms.ModelChoiceField,
    forms.UUIDField,
)  # ModelMultipleChoiceField is a ModelChoiceField


def view_function(callback: Callable[..., Any]) -> Callable[..., Any] | None:
    """The function under the decorators; None for class-based views (Django's own)."""
    if hasattr(callback, "view_class"):
        return None
    while hasattr(callback, "__wrapped__"):
        callback = callback.__wrapped__
    # Django Ninja's routes (functools.partial, or callable objects) validate their own input;
    # the API's tenancy is held by tests/api (every path with another workspace's token).
    if isinstance(callback, functools.partial) or not inspect.isfunction(callback):
        return None
    return callback


def _resolve(node: ast.expr, namespace: dict[str, Any]) -> Any:
    """The object a name or dotted attribute in the source refers to, or None."""
    if isinstance(node, ast.Name):
        return namespace.get(node.id)
    if isinstance(node, ast.Attribute):
        base = _resolve(node.value, namespace)
        return getattr(base, node.attr, None) if base is not None else None
    return None


def _data_source(node: ast.expr, data_names: dict[str, str]) -> str | None:
    """ "GET"/"POST" when the expression is request.GET/POST (or `... or None`) or a name holding it."""
    if isinstance(node, ast.BoolOp):
        for value in node.values:
            if found := _data_source(value, data_names):
                return found
        return None
    if isinstance(node, ast.Attribute) and node.attr in ("GET", "POST"):
        return node.attr
    if isinstance(node, ast.Name) and node.id in data_names:
        return data_names[node.id]
    return None


def _project_function(obj: Any, caller_module: str) -> Any:
    """A plain function of the studio's apps (or of the caller's own module), else None."""
    if isinstance(obj, types.MethodType):
        obj = obj.__func__
    if isinstance(obj, classmethod | staticmethod):
        obj = obj.__func__
    if isinstance(obj, types.FunctionType) and (
        obj.__module__.startswith(PROJECT_MODULES) or obj.__module__ == caller_module
    ):
        return obj
    return None


def reads(
    func: Callable[..., Any],
    data_names: dict[str, str] | None = None,
    seen: set[Any] | None = None,
) -> set[tuple[str, str]]:
    """(GET or POST, parameter) pairs read by `func` and what it calls."""
    seen = seen if seen is not None else set()
    if func in seen:
        return set()
    seen.add(func)
    data_names = dict(data_names or {})
    module = sys.modules[func.__module__]
    namespace = {**vars(module), **(inspect.getclosurevars(func).nonlocals)}
    try:
        tree = ast.parse(textwrap.dedent(inspect.getsource(func)))
    except (OSError, TypeError):
        return set()
    found: set[tuple[str, str]] = set()
    for node in ast.walk(tree):
        # data = request.POST / form = X(request.POST) assignments are followed below via calls.
        if isinstance(node, ast.Assign) and len(node.targets) == 1:
            target = node.targets[0]
            if isinstance(target, ast.Name) and (
                source := _data_source(node.value, data_names)
            ):
                data_names[target.id] = source
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            source = _data_source(node.func.value, data_names)
            if (
                source
                and node.func.attr in ("get", "getlist")
                and node.args
                and isinstance(node.args[0], ast.Constant)
            ):
                found.add((source, str(node.args[0].value)))
        if (
            isinstance(node, ast.Subscript)
            and isinstance(node.slice, ast.Constant)
            and (source := _data_source(node.value, data_names))
        ):
            found.add((source, str(node.slice.value)))
        if (
            isinstance(node, ast.Compare)
            and isinstance(node.left, ast.Constant)
            and len(node.comparators) == 1
            and (source := _data_source(node.comparators[0], data_names))
        ):
            found.add((source, str(node.left.value)))
        if isinstance(node, ast.Call):
            callee = _resolve(node.func, namespace)
            passed = [
                (i, s)
                for i, arg in enumerate([*node.args, *(k.value for k in node.keywords)])
                if (s := _data_source(arg, data_names))
            ]
            if isinstance(callee, type) and issubclass(callee, forms.BaseForm):
                for _, source in passed:
                    found |= {
                        (source, name)
                        for name, field in callee.base_fields.items()
                        if isinstance(field, ID_FIELDS)
                    }
            elif (inner := _project_function(callee, func.__module__)) is not None:
                # Follow the call: the parameters that received request data, or (for helpers
                # that take the request) the request itself.
                params = list(inspect.signature(inner).parameters)
                if isinstance(callee, types.MethodType) and params:
                    params = params[1:]
                names: dict[str, str] = {}
                for i, source in passed:
                    if i < len(node.args) and i < len(params):
                        names[params[i]] = source
                for keyword in node.keywords:
                    if keyword.arg and (s := _data_source(keyword.value, data_names)):
                        names[keyword.arg] = s
                found |= reads(inner, names, seen)
    return found
