"""The engine's logger, made on first use: a `jaz run` that goes well logs nothing, and
`import logging` (with the traceback machinery it brings) costs start-up."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import logging


def logger() -> logging.Logger:
    import logging

    return logging.getLogger("jaz.engine")
