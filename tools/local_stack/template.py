"""Read ``template.yaml`` so the local stack uses the deployed stack's settings, not a second copy of them.

CloudFormation's short tags (``!Ref``, ``!GetAtt``, ``!Sub``, ``!Condition`` ...) are read as their long forms
(``{"Ref": ...}``, ``{"Fn::GetAtt": ...}``, ``{"Condition": ...}``), so a parsed template can be written back as JSON;
only literal values and parameter defaults are used here.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

import yaml

TEMPLATE = Path(__file__).resolve().parents[2] / "template.yaml"


class _CfnLoader(yaml.SafeLoader):
    """SafeLoader plus CloudFormation's intrinsic-function tags."""


def _intrinsic(loader: yaml.SafeLoader, tag_suffix: str, node: yaml.Node) -> dict[str, Any]:
    name = tag_suffix if tag_suffix in ("Ref", "Condition") else f"Fn::{tag_suffix}"
    if isinstance(node, yaml.ScalarNode):
        value: Any = loader.construct_scalar(node)
        if tag_suffix == "GetAtt" and isinstance(value, str):
            value = value.split(".", 1)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)  # type: ignore[arg-type]
    return {name: value}


_CfnLoader.add_multi_constructor("!", _intrinsic)


@cache
def load_template(path: Path = TEMPLATE) -> dict[str, Any]:
    """The parsed template."""
    with path.open(encoding="utf-8") as handle:
        return yaml.load(handle, Loader=_CfnLoader)  # noqa: S506 - SafeLoader subclass with CFN tags only


def resolve(value: Any, template: dict[str, Any] | None = None) -> Any:
    """A property's value, with ``!Ref Parameter`` replaced by that parameter's default."""
    template = template or load_template()
    if isinstance(value, dict) and set(value) == {"Ref"}:
        parameter = template.get("Parameters", {}).get(value["Ref"])
        if parameter is None:
            raise KeyError(f"{value['Ref']} is not a parameter with a default")
        return parameter["Default"]
    return value


def resource_properties(logical_id: str) -> dict[str, Any]:
    """A resource's ``Properties`` block."""
    return dict(load_template()["Resources"][logical_id].get("Properties", {}))


def function_setting(logical_id: str, name: str) -> Any:
    """A function's property, falling back to ``Globals.Function`` as SAM does (``Timeout``, ``MemorySize``...)."""
    template = load_template()
    value = template["Resources"][logical_id].get("Properties", {}).get(name)
    if value is None:
        value = template.get("Globals", {}).get("Function", {}).get(name)
    if value is None:
        raise KeyError(f"{logical_id} has no {name}, in its properties or in Globals")
    return resolve(value, template)
