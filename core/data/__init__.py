"""Data readers, windows, splits and regions (canonical form: see docs/ARCHITECTURE.md).

Every reader returns the canonical ``fields`` DataArray (dims ``(time, channel, lat, lon)`` or
``(time, channel, y, x)``, float32, ``units`` along ``channel``; see :mod:`core.data.base`).  Open one
by name with :func:`open_source`; the names live in the single registry :data:`SOURCES`.
"""

from __future__ import annotations

import os
from typing import Any, Iterable, Sequence

from core.errors import DataError
from core.registry import LazyRegistry

#: Reader registry: source name → ``"module:ClassName"`` of a :class:`core.data.base.FieldSource`.
#: Imported lazily so that ``import core.data`` stays cheap.  Add names with :func:`register_source`.
SOURCES: LazyRegistry = LazyRegistry("data source", DataError, {
    "weatherbench": "core.data.weatherbench:WeatherBenchSource",
    "wb2": "core.data.wb2:WB2Source",
    "taxibj": "core.data.taxibj:TaxiBJSource",
    "taxibj-npz": "core.data.taxibj:TaxiBJNpzSource",
    "taxibj+": "core.data.taxibjplus:TaxiBJPlusSource",
    "netcdf": "core.data.netcdf:NetCDFSource",
})


def register_source(name: str, target: str) -> None:
    """Register reader ``target`` (``"module:ClassName"``) under ``name``; a name can be used once."""
    SOURCES.register(name, target)


def get_source(name: str):
    """Return an instance of the reader registered as ``name`` (unknown name → DataError)."""
    return SOURCES.load(name)()


def open_source(name: str, root: str | os.PathLike, variables: Sequence[str] | str | None = None,
                years: Iterable[int] | int | None = None, **kw: Any):
    """Open source ``name`` at ``root`` and return the canonical ``fields`` DataArray.

    ``variables``: channel names (``["z500", "t850"]`` or ``"z500,t850"``; ``None`` = all found);
    ``years``: calendar years to keep (``None`` = all).  Extra keyword arguments go to the reader
    (e.g. ``time=("2016-01-01", "2016-03-31")`` or ``region=(lat_min, lat_max, lon_min, lon_max)``
    for ``wb2``).  Lazy (dask) where the format allows: call ``.load()`` after subsetting.
    Bad input raises :class:`core.errors.DataError` naming the file and the problem.
    """
    from core.data.base import normalize_variables, normalize_years, validate_fields

    reader = get_source(name)
    da = reader.open(root, variables=normalize_variables(variables), years=normalize_years(years), **kw)
    return validate_fields(da)


__all__ = ["SOURCES", "register_source", "get_source", "open_source"]
