"""tools/sam_local/templates.py: the x86_64 copy of template.yaml that make sam-local builds and runs."""

from __future__ import annotations

import json
from pathlib import Path

from local_stack.template import load_template
from sam_local.templates import for_architecture, with_timeout, write_for_architecture


def test_every_architecture_setting_is_changed_and_nothing_else() -> None:
    source = load_template()
    copy = for_architecture("x86_64")

    assert copy["Globals"]["Function"]["Architectures"] == ["x86_64"]
    layers = {k: v for k, v in copy["Resources"].items() if v["Type"] == "AWS::Serverless::LayerVersion"}
    assert layers, "the template has layers"
    for name, layer in layers.items():
        assert layer["Properties"]["CompatibleArchitectures"] == ["x86_64"], name
        assert layer["Metadata"]["BuildArchitecture"] == "x86_64", name
    untouched = {"Parameters", "Conditions", "Mappings", "Outputs"}
    assert {k: copy[k] for k in untouched if k in copy} == {k: source[k] for k in untouched if k in source}
    assert (
        copy["Resources"]["SenderFunction"]["Properties"]["Environment"]
        == (source["Resources"]["SenderFunction"]["Properties"]["Environment"])
    )
    assert source["Globals"]["Function"]["Architectures"] == ["arm64"], "the parsed source must stay as it is"


def test_code_paths_are_absolute_and_exist() -> None:
    copy = for_architecture("x86_64")
    paths = [copy["Resources"]["SenderFunction"]["Properties"]["CodeUri"]]
    for resource in copy["Resources"].values():
        if resource["Type"] == "AWS::Serverless::LayerVersion":
            paths.append(resource["Properties"]["ContentUri"])
            paths.append(resource["Metadata"].get("ContextPath", resource["Properties"]["ContentUri"]))
    assert all(Path(p).is_absolute() and Path(p).is_dir() for p in paths), paths


def test_the_copy_is_json_with_long_form_intrinsics(tmp_path: Path) -> None:
    written = write_for_architecture("x86_64", tmp_path / "t.json")
    document = json.loads(written.read_text(encoding="utf-8"))

    assert document["Resources"]["SenderFunction"]["Properties"]["Handler"] == "app.lambda_handler"
    assert document["Resources"]["SenderFunction"]["Properties"]["Role"] == {
        "Fn::GetAtt": ["SenderFunctionRole", "Arn"]
    }
    assert document["Resources"]["SenderFunction"]["Properties"]["Layers"][0] == {"Ref": "DependenciesLayer"}


def test_short_tags_are_read_as_their_long_forms(tmp_path: Path) -> None:
    source = tmp_path / "template.yaml"
    source.write_text(
        "Conditions:\n  A: !Equals [!Ref P, x]\n  B: !And [!Condition A, !Not [!Condition A]]\n"
        "Value: !Sub '${AWS::Region}'\n",
        encoding="utf-8",
    )
    parsed = load_template(source)

    assert parsed["Conditions"]["B"] == {"Fn::And": [{"Condition": "A"}, {"Fn::Not": [{"Condition": "A"}]}]}
    assert parsed["Conditions"]["A"] == {"Fn::Equals": [{"Ref": "P"}, "x"]}
    assert parsed["Value"] == {"Fn::Sub": "${AWS::Region}"}


def test_the_emulated_run_gets_a_copy_of_the_built_template_with_a_longer_timeout(tmp_path: Path) -> None:
    built = tmp_path / "build" / "template.yaml"
    built.parent.mkdir()
    built.write_text(
        "Globals:\n  Function:\n    Timeout: 30\n    MemorySize: 512\n"
        "Resources:\n  F:\n    Type: AWS::Serverless::Function\n    Properties:\n      CodeUri: F\n      Timeout: 20\n"
        "  L:\n    Type: AWS::Serverless::LayerVersion\n    Properties:\n      ContentUri: L\n",
        encoding="utf-8",
    )
    copy = with_timeout(built, 300, "template.slow.json")
    document = json.loads(copy.read_text(encoding="utf-8"))

    assert copy.parent == built.parent  # so that the relative code paths still point at the built artifacts
    assert document["Globals"]["Function"] == {"Timeout": 300, "MemorySize": 512}
    assert document["Resources"]["F"]["Properties"] == {"CodeUri": "F", "Timeout": 300}
    assert document["Resources"]["L"]["Properties"] == {"ContentUri": "L"}
