"""The one reader of ``template.yaml``: everything outside SAM that needs the stack's settings reads them here.

Users: the local stack (queue settings, message sizes, each function's declared variables), ``make invoke`` (which
function an event goes to, handler, code folders, timeout, memory, environment), the benchmarks (memory size) and the
template's tests. What it does, once for all of them:

* parse the file, CloudFormation's short tags (``!Ref``, ``!GetAtt``, ``!Sub``, ``!If`` ...) read as their long forms
  (``{"Ref": ...}``, ``{"Fn::GetAtt": [..]}``, ``{"Condition": ...}``), as CloudFormation itself reads them;
* merge ``Globals.Function`` into a function's properties as SAM does (maps merged key by key, lists appended after the
  global ones, a scalar of the resource's own replacing the global one), on top of SAM's own defaults
  (:data:`SAM_FUNCTION_DEFAULTS`);
* resolve what needs no deployment: literals, a parameter's ``Default`` (``!Ref Parameter``) and ``!FindInMap``.
  Anything else (a resource's ``!Ref``, ``!GetAtt``, ``!Sub``, a parameter without a default) is
  :class:`UnresolvedValue`.

PyYAML, not cfn-lint's decoder: cfn-lint (and its ``decode`` module, which reads the same tags) is installed only in
``.venv-sam``, whose pins (boto3, jsonschema ...) conflict with the test environment's; PyYAML is already a test
dependency and the tags need a dozen lines.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import cache
from pathlib import Path
from typing import Any, Final

import yaml

TEMPLATE: Final = Path(__file__).resolve().parents[2] / "template.yaml"

SAM_FUNCTION_DEFAULTS: Final[Mapping[str, Any]] = {"Timeout": 3, "MemorySize": 128}
"""What SAM (and Lambda) use for an ``AWS::Serverless::Function`` that sets neither itself nor in ``Globals``."""

Scalar = str | int | float | bool


class UnresolvedValue(KeyError):
    """A value only a deployment can give (a resource's id or attribute, ``!Sub``, a parameter without default)."""


class _CfnLoader(yaml.SafeLoader):
    """SafeLoader plus CloudFormation's short tags."""


def _intrinsic(loader: yaml.SafeLoader, tag_suffix: str, node: yaml.Node) -> dict[str, Any]:
    value: Any
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
        if tag_suffix == "GetAtt" and isinstance(value, str):
            value = value.split(".", 1)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)  # type: ignore[arg-type]
    name = tag_suffix if tag_suffix in ("Ref", "Condition") else f"Fn::{tag_suffix}"
    return {name: value}


_CfnLoader.add_multi_constructor("!", _intrinsic)


@cache
def load_template(path: Path = TEMPLATE) -> dict[str, Any]:
    """The parsed template (cached: one parse per process; treat it as read-only)."""
    with path.open(encoding="utf-8") as handle:
        return yaml.load(handle, Loader=_CfnLoader)  # noqa: S506 - SafeLoader subclass with CFN tags only


def resolve(value: Any, template: Mapping[str, Any] | None = None) -> Scalar:
    """A property's value as deploying with every parameter at its default would make it, or :class:`UnresolvedValue`.

    A literal is itself; ``!Ref Parameter`` is that parameter's ``Default``; ``!FindInMap [map, key, key]`` is the
    mapping's value.
    """
    template = load_template() if template is None else template
    if isinstance(value, Scalar):
        return value
    if isinstance(value, dict) and set(value) == {"Ref"}:
        parameter = template.get("Parameters", {}).get(value["Ref"])
        if parameter is None or "Default" not in parameter:
            raise UnresolvedValue(f"{value['Ref']} is not a parameter with a default")
        return resolve(parameter["Default"], template)
    if isinstance(value, dict) and set(value) == {"Fn::FindInMap"}:
        name, first, second = (resolve(part, template) for part in value["Fn::FindInMap"])
        found = template.get("Mappings", {}).get(name, {}).get(first, {}).get(second)
        if not isinstance(found, Scalar):
            raise UnresolvedValue(f"no Mappings.{name}.{first}.{second}")
        return found
    raise UnresolvedValue(f"{value!r} needs a deployment to have a value")


def resource_properties(logical_id: str, template: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """A resource's own ``Properties`` block, as written (no Globals: see :func:`function_properties`)."""
    template = load_template() if template is None else template
    return dict(template["Resources"][logical_id].get("Properties", {}))


def serverless_functions(template: Mapping[str, Any] | None = None) -> list[str]:
    """The logical ids of the template's ``AWS::Serverless::Function`` resources, in the template's order."""
    template = load_template() if template is None else template
    return [
        logical_id
        for logical_id, resource in template.get("Resources", {}).items()
        if resource.get("Type") == "AWS::Serverless::Function"
    ]


def function_properties(logical_id: str, template: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """A serverless function's properties as SAM deploys them: SAM's defaults, ``Globals.Function``, its own."""
    template = load_template() if template is None else template
    merged = _sam_merge(dict(SAM_FUNCTION_DEFAULTS), template.get("Globals", {}).get("Function", {}))
    return _sam_merge(merged, resource_properties(logical_id, template))


def _sam_merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """SAM's Globals rule: maps merge key by key, lists are the global items then the resource's, scalars replace."""
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping) and not _is_intrinsic(value):
            merged[key] = _sam_merge(merged[key], value)
        elif isinstance(value, list) and isinstance(merged.get(key), list):
            merged[key] = [*merged[key], *value]
        else:
            merged[key] = value
    return merged


def _is_intrinsic(value: Mapping[str, Any]) -> bool:
    """``{"Ref": ..}``, ``{"Fn::If": ..}`` ...: a value to replace whole, not a map to merge into."""
    if len(value) != 1:
        return False
    (key,) = value
    return key in ("Ref", "Condition") or str(key).startswith("Fn::")


def function_setting(logical_id: str, name: str) -> Scalar:
    """One of a function's properties resolved (``Timeout``, ``MemorySize`` ...), Globals and SAM's defaults applied."""
    properties = function_properties(logical_id)
    if name not in properties:
        raise KeyError(f"{logical_id} has no {name}, in its properties, in Globals or in SAM's defaults")
    return resolve(properties[name])


def function_environment(logical_id: str, template: Mapping[str, Any] | None = None) -> dict[str, Scalar]:
    """The function's environment variables that have a value without a deployment (see :func:`resolve`)."""
    template = load_template() if template is None else template
    variables = function_properties(logical_id, template).get("Environment", {}).get("Variables", {})
    resolved: dict[str, Scalar] = {}
    for name, value in variables.items():
        try:
            resolved[name] = resolve(value, template)
        except UnresolvedValue:
            continue
    return resolved


def api_routes(logical_id: str = "SenderFunction", template: Mapping[str, Any] | None = None) -> list[tuple[str, str]]:
    """The REST API routes a function's ``Api`` events declare, as ``(METHOD, path template)`` pairs
    (``("GET", "/messages/{message_id}")``): what the local API Gateway serves, so it serves exactly the template's."""
    template = load_template() if template is None else template
    events = function_properties(logical_id, template).get("Events", {})
    return [
        (str(event["Properties"]["Method"]).upper(), str(event["Properties"]["Path"]))
        for event in events.values()
        if event.get("Type") == "Api"
    ]
