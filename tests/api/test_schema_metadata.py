"""Every request body that takes ``metadata`` declares its limits in the OpenAPI schema
(the field's ``extend_schema_field`` lives in ``marketplace/kernel/api/metadata_patch.py``;
a refactor once left it on the next class, and integrators' schemas lost the limits)."""

from django.urls import reverse

LIMITS = {
    "type": "object",
    "maxProperties": 50,
    "additionalProperties": {"type": "string", "maxLength": 500, "nullable": True},
}


def test_metadata_in_every_request_body_has_its_limits(api):
    schema = api.get(reverse("api:schema"), HTTP_ACCEPT="application/vnd.oai.openapi+json").json()
    request_bodies = {
        name: component
        for name, component in schema["components"]["schemas"].items()
        if name.endswith("Request") and "metadata" in component.get("properties", {})
    }

    assert {"CartCheckoutRequestRequest", "PatchedMetadataUpdateRequest"} <= set(request_bodies)
    for name, component in request_bodies.items():
        metadata = component["properties"]["metadata"]
        assert {key: metadata.get(key) for key in LIMITS} == LIMITS, name


def test_no_serializer_reads_as_the_metadata_field():
    """The seller order carried the metadata field's schema by mistake: it is an
    object with its own properties again."""
    from drf_spectacular.generators import SchemaGenerator

    schema = SchemaGenerator().get_schema(request=None, public=True)
    seller_order = schema["components"]["schemas"]["SellerOrder"]

    assert "maxProperties" not in seller_order
    assert {"id", "order", "status", "lines"} <= set(seller_order["properties"])
