"""USB ids a driver claims for auto-detection. Plain data, no I/O: the codecs, the driver packages
and the device manager all read it."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class UsbId:
    """A USB id a driver claims; `product` (a substring of the USB product string) narrows
    generic bridge chips that several boards share."""

    vid: int
    pid: int
    product: str | None = None
    model: str | None = None

    def matches(self, vid: int | None, pid: int | None, product: str | None) -> bool:
        if vid != self.vid or pid != self.pid:
            return False
        return self.product is None or (product is not None and self.product.lower() in product.lower())

    def __str__(self) -> str:
        return f"{self.vid:04x}:{self.pid:04x}" + (f" ({self.product})" if self.product else "")
