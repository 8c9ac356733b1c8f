"""The schemas themselves: valid 2020-12, described, closed, and the generated docs are current."""

from __future__ import annotations

import subprocess
import sys

import pytest
from jsonschema import Draft202012Validator

from conftest import REPO
from opslab import contracts


@pytest.mark.parametrize("name", contracts.schema_names())
def test_schema_is_valid_and_every_field_described(name):
    schema = contracts.load_schema(name)
    Draft202012Validator.check_schema(schema)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"

    def walk(node, where):
        for key, sub in node.get("properties", {}).items():
            assert "description" in sub or "$ref" in sub, f"{name}: {where}/{key} has no description"
            if isinstance(sub, dict):
                walk(sub, f"{where}/{key}")
                if isinstance(sub.get("items"), dict):
                    walk(sub["items"], f"{where}/{key}[]")

    walk(schema, "")
    assert schema.get("additionalProperties") is False


def test_every_registered_artifact_has_a_schema():
    for schema in [*contracts.RUN_ARTIFACTS.values(), *contracts.ROOT_ARTIFACTS.values()]:
        assert schema in contracts.schema_names()


def test_schema_reference_docs_are_current():
    proc = subprocess.run([sys.executable, "scripts/gen_schema_docs.py", "--check"], cwd=REPO, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
