"""The engines Connhub keeps connections to, each with every fact about it in one place.

The rest is derived from here: connection-string schemes and their default ports
(`connstring.SCHEMES`), the list filter's `type` check, the probe registry, product names in test
reports, the Reporter dialect's `type` (and its data-source type), Chartbrew's `type`. Adding an
engine is one member here plus its probe module.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


@dataclass(frozen=True)
class EngineFacts:
    chartbrew_name: str  # Chartbrew's `type`
    default_port: int
    default_schema: str | None  # the schema discovery reads when the connection names none
    schemes: tuple[str, ...]  # connection-string schemes (`connstring`)
    probe_module: str  # connhub.probes.<probe_module> exposes PROBE
    product_name: str  # as a test report names the server


class Engine(StrEnum):
    """An engine; its value is the canonical (Reporter dialect's) name, e.g. `POSTGRESQL`."""

    _value_: str
    facts: EngineFacts

    def __new__(cls, value: str, facts: EngineFacts | None = None) -> Engine:
        # `facts` is None only in a lookup such as Engine("MYSQL"), which never reaches here.
        member = str.__new__(cls, value)
        member._value_ = value
        if facts is not None:
            member.facts = facts
        return member

    ORACLE = "ORACLE", EngineFacts("oracle", 1521, None, ("oracle",), "oracle", "Oracle")
    SQL_SERVER = "SQL_SERVER", EngineFacts("mssql", 1433, "dbo", ("sqlserver", "mssql"), "mssql", "SQL Server")
    POSTGRESQL = (
        "POSTGRESQL",
        EngineFacts("postgres", 5432, "public", ("postgresql", "postgres"), "postgres", "PostgreSQL"),
    )
    MONGODB = "MONGODB", EngineFacts("mongodb", 27017, None, ("mongodb", "mongodb+srv"), "mongodb", "MongoDB")
    MYSQL = "MYSQL", EngineFacts("mysql", 3306, None, ("mysql", "mariadb"), "mysql", "MySQL")

    @property
    def data_source_type(self) -> str:
        """The Reporter dialect's /v1/data-sources `type`: the name in lower case."""
        return self.value.lower()


ENGINE_NAMES = ", ".join(Engine)  # "ORACLE, SQL_SERVER, POSTGRESQL, MONGODB, MYSQL", for messages
