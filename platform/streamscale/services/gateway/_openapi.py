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
from werkzeug.routing import BaseConverter, Rule

from ..api import ID_PATTERN, IdConverter
from ..social._api import OPENAPI_CONTENT_TYPE


class ApiOpenAPIProvider(OpenAPIProvider):
    def build_request_body(
        self, model: type[Model], source: DataSource
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        body, definitions = super().build_request_body(model, source)
        body["required"] = True
        return body, definitions

    def build_paths(self, rule: Rule) -> tuple[dict[str, Any], dict[str, Any]]:
        """A route may name its 200 answer's media type (`OPENAPI_CONTENT_TYPE`: the
        notification event stream); the documented model then describes each event's data."""
        paths, components = super().build_paths(rule)
        view = self._app.view_functions[rule.endpoint]
        media_type = getattr(view, OPENAPI_CONTENT_TYPE, None)
        for operation in (op for ops in paths.values() for op in ops.values()):
            ok = operation["responses"].get(200) if media_type else None
            if ok is not None:
                data = ok["content"].pop("application/json")["schema"]
                ok["content"][media_type] = {"schema": {"type": "string"}, "x-event-data": data}
        return paths, components

    def build_path_parameter(self, name: str, converter: BaseConverter) -> dict[str, Any]:
        parameter = super().build_path_parameter(name, converter)
        if isinstance(converter, IdConverter):
            parameter["schema"] = {"type": "string", "pattern": f"^{ID_PATTERN}$"}
        return parameter
