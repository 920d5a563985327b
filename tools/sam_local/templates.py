"""Copies of the template for ``make sam-local``: for another architecture, and with a longer timeout.

**Another architecture** (the x86_64 run):
The deployed template says arm64 everywhere: the function's ``Architectures``, the layers' ``CompatibleArchitectures``
and ``BuildArchitecture``, and ``layers/deps/Makefile`` fetches aarch64 wheels. An x86_64 container needs x86_64
wheels (pydantic-core is native code), so the x86_64 run builds this copy into its own folder, with
``LAMBDA_ARCHITECTURE=x86_64`` for the layer's Makefile. The copy is JSON (CloudFormation reads it as well as YAML)
and names its code folders by absolute path, so it can live outside the project folder.

**A longer timeout** (an architecture the host CPU runs only under qemu): the function's ``Timeout`` (30 s) is sized
for Lambda's CPUs. Under qemu's user-mode emulation a cold start (Python importing boto3, pydantic, Powertools)
takes many times longer, and on a busy machine it alone can pass 30 s. The copy of the *built* template, written
beside it so its code paths stay valid, raises the timeout; the artifacts are the built ones, unchanged.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

from local_stack.template import TEMPLATE, load_template

CODE_PATHS = {
    "AWS::Serverless::Function": ("Properties", "CodeUri"),
    "AWS::Serverless::LayerVersion": ("Properties", "ContentUri"),
}


def for_architecture(architecture: str, source: Path = TEMPLATE) -> dict[str, Any]:
    """The template with every architecture setting changed to ``architecture`` and its code paths made absolute."""
    template = copy.deepcopy(load_template(source))
    root = source.resolve().parent
    function_globals = template.get("Globals", {}).get("Function", {})
    if "Architectures" in function_globals:
        function_globals["Architectures"] = [architecture]
    for resource in template["Resources"].values():
        properties, metadata = resource.get("Properties", {}), resource.get("Metadata", {})
        if resource["Type"] == "AWS::Serverless::Function" and "Architectures" in properties:
            properties["Architectures"] = [architecture]
        if resource["Type"] == "AWS::Serverless::LayerVersion":
            properties["CompatibleArchitectures"] = [architecture]
            if "BuildArchitecture" in metadata:
                metadata["BuildArchitecture"] = architecture
        if "ContextPath" in metadata:
            metadata["ContextPath"] = str(root / metadata["ContextPath"])
        if resource["Type"] in CODE_PATHS:
            section, key = CODE_PATHS[resource["Type"]]
            resource[section][key] = str(root / resource[section][key])
    return template


def write_for_architecture(architecture: str, destination: Path, source: Path = TEMPLATE) -> Path:
    destination.parent.mkdir(parents=True, exist_ok=True)
    destination.write_text(json.dumps(for_architecture(architecture, source), indent=1), encoding="utf-8")
    return destination


def with_timeout(built: Path, seconds: int, name: str) -> Path:
    """A copy of a built template, in its folder, with every function's ``Timeout`` set to ``seconds``."""
    template = copy.deepcopy(load_template(built))
    function_globals = template.get("Globals", {}).get("Function", {})
    if "Timeout" in function_globals:
        function_globals["Timeout"] = seconds
    for resource in template["Resources"].values():
        if resource["Type"] == "AWS::Serverless::Function" and "Timeout" in resource.get("Properties", {}):
            resource["Properties"]["Timeout"] = seconds
    destination = built.parent / name
    destination.write_text(json.dumps(template, indent=1), encoding="utf-8")
    return destination
