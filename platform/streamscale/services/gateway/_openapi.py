"""The served OpenAPI document, made to say what the server enforces.

quart-schema leaves request bodies optional and every path parameter a bare string; here
bodies of `validate_request` routes are required (a missing body is a 400) and `<id:...>`
parameters carry the id pattern the router matches.
"""

from __future__ import annotations

from typing import Any

from quart_schema.openapi import OpenAPIProvider
from quart_schema.typing import Model
from quart_schema.validation import DataSource
from werkzeug.routing import BaseConverter

from ..api import ID_PATTERN, IdConverter


class ApiOpenAPIProvider(OpenAPIProvider):
    def build_request_body(
        self, model: type[Model], source: DataSource
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        body, definitions = super().build_request_body(model, source)
        body["required"] = True
        return body, definitions

    def build_path_parameter(self, name: str, converter: BaseConverter) -> dict[str, Any]:
        parameter = super().build_path_parameter(name, converter)
        if isinstance(converter, IdConverter):
            parameter["schema"] = {"type": "string", "pattern": f"^{ID_PATTERN}$"}
        return parameter
