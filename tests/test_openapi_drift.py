"""Issue 16: the served OpenAPI document cannot drift from the code.

(a) every /api route the app routes is documented, with the same methods, and nothing else is;
(b) each body and answer schema in the document is the one its pydantic model makes (schemas, not only
    paths), so validation and documentation come from one declaration;
(c) the document equals the committed snapshot tests/data/openapi.json — a change to the API shows up
    in review as a change to that file.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from sprechstunde.web.core import openapi
from sprechstunde.web.core.app import create_app

SNAPSHOT = Path(__file__).parent / "data" / "openapi.json"
REGENERATE = "python -m sprechstunde.web.core.openapi > tests/data/openapi.json"


def _component(document: dict[str, Any], ref: dict[str, str]) -> tuple[str, dict[str, Any]]:
    name = ref["$ref"].rsplit("/", 1)[1]
    return name, document["components"]["schemas"][name]


def _same_as_model(document: dict[str, Any], ref: dict[str, str], model: type[BaseModel], mode: str) -> None:
    """The component `ref` names, and every schema it refers to, is what the model generates."""
    name, component = _component(document, ref)
    generated = model.model_json_schema(ref_template=openapi.REF, mode=mode)  # type: ignore[arg-type]
    nested = generated.pop("$defs", {})
    assert component == generated, f"{name} differs from {model.__module__}.{model.__qualname__} ({mode})"
    for inner, schema in nested.items():
        assert document["components"]["schemas"].get(inner) == schema, f"{inner} (inside {name}) differs"


async def test_every_api_route_is_documented_with_its_methods(client):
    routed = {
        (route.method, route.resource.canonical)
        for route in client.app.router.routes()
        if route.resource is not None
        and route.resource.canonical.startswith("/api/")
        and route.method not in ("HEAD", "OPTIONS")
    }
    document = await (await client.get("/api/openapi.json")).json()
    documented = {
        (method.upper(), path)
        for path, operations in document["paths"].items()
        if path.startswith("/api/")
        for method in operations
    }
    assert routed - documented == set(), "routed but not in the OpenAPI document (declare it with api_route)"
    assert documented - routed == set(), "documented but not routed"


async def test_schemas_in_the_document_are_the_models(client):
    document = await (await client.get("/api/openapi.json")).json()
    bodies = answers = 0
    for operation in openapi.OPERATIONS.values():
        raw = [a for a in (operation.body, *operation.answers.values()) if isinstance(a, openapi.Raw)]
        if operation.path != "/api/openapi.json":  # every JSON body and answer of the API is a model
            assert not [r for r in raw if "application/json" in r.content], operation.path
        served = document["paths"][operation.path][operation.method.lower()]
        if isinstance(operation.body, type):
            schema = served["requestBody"]["content"]["application/json"]["schema"]
            _same_as_model(document, schema, operation.body, "validation")
            bodies += 1
        for status, answer in operation.answers.items():
            if isinstance(answer, type):
                schema = served["responses"][str(status)]["content"]["application/json"]["schema"]
                _same_as_model(document, schema, answer, "serialization")
                answers += 1
        for status in operation.statuses():
            error = served["responses"][str(status)]["content"]["application/json"]["schema"]
            assert _component(document, error)[0] == "ErrorOut", (operation.path, status)
    assert bodies >= 14 and answers >= 34


async def test_document_matches_the_committed_snapshot(client):
    served = await (await client.get("/api/openapi.json")).json()
    committed = json.loads(SNAPSHOT.read_text())
    served["servers"] = committed["servers"]
    assert served == committed, (
        "the OpenAPI document changed; if that is intended, regenerate the snapshot "
        f"(`{REGENERATE}`) and commit it with the change"
    )


def test_snapshot_command_prints_the_document(config):
    """What the regenerate command prints is what the app serves (the snapshot test then compares)."""
    create_app(config)  # every area's routes recorded, as in the command
    printed = json.loads(json.dumps(openapi.document(openapi.SNAPSHOT_SERVER), ensure_ascii=False))
    assert printed == json.loads(SNAPSHOT.read_text()), f"regenerate: {REGENERATE}"
