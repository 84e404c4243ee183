"""Django's contrib apps as MongoDB needs them: their models get ObjectId primary keys (MongoDB has no
auto-increment), with the matching migrations in mongo_migrations/. Used only when DATABASE_URL is
mongodb://…; the chat apps need nothing of this, their keys are strings on every backend."""

from axes.apps import AppConfig as AxesConfig
from django.contrib.admin.apps import AdminConfig
from django.contrib.auth.apps import AuthConfig
from django.contrib.contenttypes.apps import ContentTypesConfig

OBJECT_ID_AUTO_FIELD = "django_mongodb_backend.fields.ObjectIdAutoField"


class MongoAdminConfig(AdminConfig):
    default_auto_field = OBJECT_ID_AUTO_FIELD


class MongoAuthConfig(AuthConfig):
    default_auto_field = OBJECT_ID_AUTO_FIELD


class MongoContentTypesConfig(ContentTypesConfig):
    default_auto_field = OBJECT_ID_AUTO_FIELD


class MongoAxesConfig(AxesConfig):
    """django-axes' own models (unused: attempts are counted in the cache), which must still migrate."""

    default_auto_field = OBJECT_ID_AUTO_FIELD
