"""Shapes of the attachment endpoints (for the schema; the views build the bodies)."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers


# An empty part is not a file (multipart parsers drop it), so the schema asks for at least one byte.
@extend_schema_field({"type": "string", "format": "binary", "minLength": 1})
class NonEmptyFileField(serializers.FileField):
    pass


class UploadInput(serializers.Serializer):
    file = NonEmptyFileField(help_text="The file. Its type is decided by its content, not its name.")


class AttachmentSerializer(serializers.Serializer):
    attachmentId = serializers.CharField()
    name = serializers.CharField(help_text="The file's name, cleaned; its extension matches its real type.")
    contentType = serializers.CharField(help_text="From the file's content: image/jpeg, application/pdf, …")
    size = serializers.IntegerField(help_text="Bytes, as stored (images are stored re-encoded).")
    url = serializers.URLField(help_text="Download with the bearer token (or a staff session).")
    thumbnailUrl = serializers.URLField(required=False, help_text="Images only: a WebP at most 320 px a side.")
    width = serializers.IntegerField(required=False)
    height = serializers.IntegerField(required=False)


class AttachmentLinkSerializer(serializers.Serializer):
    url = serializers.URLField(help_text="Signed: works without credentials until expiresAt.")
    thumbnailUrl = serializers.URLField(allow_null=True)
    expiresAt = serializers.DateTimeField()


class DownloadQuery(serializers.Serializer):
    variant = serializers.ChoiceField(choices=["original", "thumbnail"], required=False, default="original")
    sig = serializers.CharField(required=False, max_length=200, help_text="A signed link's signature.")
