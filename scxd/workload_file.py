"""The schema of a workloads file (``scxd-testbed record --workloads-file``).

Only the shape lives here (pydantic, so a bad file gets an error naming the field);
:func:`scxd.workloads.load_file` checks what needs scxd's own tables (names, categories,
parsers, headline keys) and builds the :class:`scxd.workloads.Workload` objects.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ProcessSpec(_Strict):
    argv: list[str] = Field(min_length=1, description="the command; {seconds} and {seed} "
                            "are replaced by the cell's duration and seed")
    repeat: str = Field("once", description="once, loop or timed-loop")


class HeadlineSpec(_Strict):
    metric: str = Field(min_length=1)
    direction: Literal["higher", "lower"]
    unit: str = ""
    doc: str = ""


class WorkloadSpec(_Strict):
    name: str = Field(pattern=r"^[a-z][a-z0-9_]{0,39}$")
    describe: str = Field(min_length=1)
    category: str
    processes: list[ProcessSpec] = Field(min_length=1)
    parsers: list[str] = Field(min_length=1)
    headline: HeadlineSpec


class WorkloadsFile(_Strict):
    workloads: list[WorkloadSpec] = Field(min_length=1)
