"""OpenAPI descriptions of the service's authentication classes (loaded by ChatServiceConfig.ready)."""

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.openapi import AutoSchema
from drf_spectacular.plumbing import build_bearer_security_scheme_object


class JWTAuthenticationScheme(OpenApiAuthenticationExtension):
    target_class = "chatservice.authentication.JWTAuthentication"
    name = "jwtAuth"

    def get_security_definition(self, auto_schema: AutoSchema) -> dict:
        return build_bearer_security_scheme_object(
            header_name="Authorization",
            token_prefix="Bearer",  # noqa: S106 - a scheme name, not a secret
            bearer_format="JWT (RS256, issued by the Auth Service)",
        )


class StaffSessionScheme(OpenApiAuthenticationExtension):
    target_class = "chatservice.authentication.StaffSessionAuthentication"
    name = "staffSession"

    def get_security_definition(self, auto_schema: AutoSchema) -> dict:
        return {
            "type": "apiKey",
            "in": "cookie",
            "name": "sessionid",
            "description": "Django admin session of a staff user (acts as ADMIN, user id = username).",
        }


def seed_paths(result: dict, generator: object, request: object, public: bool) -> dict:
    """Publish the seed's paths (no trailing slash); the router also accepts one."""
    result["paths"] = {path.rstrip("/") or "/": item for path, item in result["paths"].items()}
    return result
