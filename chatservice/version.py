"""The service's version: pyproject.toml's [project].version, the one place it is written.

Read from the file rather than from installed package metadata: the container image installs the
dependencies only and runs the code from its directory (Dockerfile), so there is no metadata to read there.
"""

from __future__ import annotations

import tomllib

from chatservice.config import BASE_DIR

with (BASE_DIR / "pyproject.toml").open("rb") as _file:
    VERSION: str = tomllib.load(_file)["project"]["version"]
