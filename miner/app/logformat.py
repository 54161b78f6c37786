"""One log format for every way the miner prints, plain lines and under the live view alike:
`20:22:36 message`, with the level named only where it matters (`20:22:36 warning: ...`,
`... error: ...`), as cgminer's applog lines carry the time and the text and little else."""

from __future__ import annotations

import logging

DATEFMT = "%H:%M:%S"


class LineFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s %(message)s", DATEFMT)

    def formatMessage(self, record: logging.LogRecord) -> str:  # noqa: N802 - logging's name
        level = f"{record.levelname.lower()}: " if record.levelno >= logging.WARNING else ""
        return f"{record.asctime} {level}{record.message}"
