"""The service's own settings in MongoDB mode (DATABASE_URL=mongodb://…), with the offline engine."""

from chatservice.settings import *  # noqa: F403

assert CONFIG.database_url_scheme == "mongodb", "set DATABASE_URL=mongodb://…"  # noqa: F405
DATABASES["default"]["ENGINE"] = "tests.mongo_offline"  # noqa: F405
