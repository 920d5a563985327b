"""tools/lambda_image: the names SAM looks for, the image archive's architecture, and when an image is rebuilt."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from lambda_image import build, rootfs
from lambda_image.build import ARCHES, recipe_hash


def test_the_tags_are_the_ones_sam_cli_looks_for() -> None:
    """samcli/local/docker/lambda_image.py: public.ecr.aws/lambda/ + the runtime's image tag, arch included."""
    assert ARCHES["arm64"].tag == "public.ecr.aws/lambda/python:3.13-arm64"
    assert ARCHES["x86_64"].tag == "public.ecr.aws/lambda/python:3.13-x86_64"
    assert (ARCHES["arm64"].platform, ARCHES["x86_64"].platform) == ("linux/arm64", "linux/amd64")


@pytest.mark.parametrize(("arch", "variant"), [("arm64", "v8"), ("amd64", None)])
def test_the_loaded_image_carries_the_target_architecture(arch: str, variant: str | None) -> None:
    config = json.loads(rootfs.image_config("sha256:" + "0" * 64, arch, {"recipe": "r"}))

    assert (config["architecture"], config["os"], config.get("variant")) == (arch, "linux", variant)
    assert config["rootfs"] == {"type": "layers", "diff_ids": ["sha256:" + "0" * 64]}
    assert config["config"]["Labels"] == {"recipe": "r"}


def test_a_changed_input_changes_the_recipe(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    rie = tmp_path / "aws-lambda-rie-x86_64"
    rie.write_bytes(b"emulator")
    files = tmp_path / "image"
    shutil.copytree(build.IMAGE_FILES, files)
    monkeypatch.setattr(build, "IMAGE_FILES", files)
    before = recipe_hash(rie)

    assert recipe_hash(rie) == before
    (files / "requirements.txt").write_text("awslambdaric==9.9.9\n", encoding="utf-8")
    changed_requirements = recipe_hash(rie)
    rie.write_bytes(b"another emulator")

    assert len({before, changed_requirements, recipe_hash(rie)}) == 3


def test_the_runtime_requirements_are_all_pinned() -> None:
    lines = [line.strip() for line in (build.IMAGE_FILES / "requirements.txt").read_text().splitlines()]
    pins = [line for line in lines if line and not line.startswith("#")]

    assert pins and all("==" in line for line in pins)
    assert {p.split("==")[0] for p in pins} >= {"awslambdaric", "boto3", "botocore"}
