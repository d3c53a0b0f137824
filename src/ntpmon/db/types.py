"""Column types that render the production MySQL DDL and still work on SQLite.

SQLite has no unsigned integers, enums, JSON or fixed-precision datetimes; each type here
maps to the MySQL spelling of the production schema and to a plain SQLite equivalent.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import BigInteger, Date, DateTime, Double, Integer, SmallInteger, String, Text
from sqlalchemy.dialects import mysql, sqlite
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.expression import FunctionElement
from sqlalchemy.types import TypeEngine, UserDefinedType

MYSQL = ("mysql", "mariadb")
_SQLITE_DT_SECONDS = "%(year)04d-%(month)02d-%(day)02d %(hour)02d:%(minute)02d:%(second)02d"
_SQLITE_DT_MICROS = _SQLITE_DT_SECONDS + ".%(microsecond)06d"
_SQLITE_DT_REGEXP = r"(\d+)-(\d+)-(\d+)[ T](\d+):(\d+):(\d+)(?:\.(\d{6}))?"


def _mysql(generic: TypeEngine[Any], specific: TypeEngine[Any]) -> TypeEngine[Any]:
    return generic.with_variant(specific, *MYSQL)


def uint() -> TypeEngine[Any]:
    """``int unsigned``; SQLite's INTEGER is what makes ``AUTOINCREMENT`` possible."""
    return _mysql(Integer(), mysql.INTEGER(unsigned=True))


def ubigint() -> TypeEngine[Any]:
    """``bigint unsigned`` (the big tables' ids); plain INTEGER on SQLite for AUTOINCREMENT."""
    return _mysql(BigInteger(), mysql.BIGINT(unsigned=True)).with_variant(Integer(), "sqlite")


def utinyint() -> TypeEngine[Any]:
    return _mysql(SmallInteger(), mysql.TINYINT(unsigned=True))


def tinyint1() -> TypeEngine[Any]:
    """``tinyint(1)``: MySQL's boolean, kept as an int so 0/1 round-trip unchanged."""
    return _mysql(SmallInteger(), mysql.TINYINT(display_width=1))


def mediumint() -> TypeEngine[Any]:
    return _mysql(Integer(), mysql.MEDIUMINT())


def double() -> TypeEngine[Any]:
    return _mysql(Double(), mysql.DOUBLE(asdecimal=False))


def datetime0() -> TypeEngine[Any]:
    """``datetime`` (second precision); SQLite stores the same canonical text."""
    return _mysql(DateTime(), mysql.DATETIME(fsp=0)).with_variant(
        sqlite.DATETIME(storage_format=_SQLITE_DT_SECONDS, regexp=_SQLITE_DT_REGEXP), "sqlite"
    )


def datetime6() -> TypeEngine[Any]:
    """``datetime(6)``: the two monitor columns that need microseconds."""
    return _mysql(DateTime(), mysql.DATETIME(fsp=6)).with_variant(
        sqlite.DATETIME(storage_format=_SQLITE_DT_MICROS, regexp=_SQLITE_DT_REGEXP), "sqlite"
    )


def timestamp() -> TypeEngine[Any]:
    """``timestamp`` for the auto-maintained ``modified_on``/``updated_on`` columns."""
    return _mysql(DateTime(), mysql.TIMESTAMP()).with_variant(
        sqlite.DATETIME(storage_format=_SQLITE_DT_SECONDS, regexp=_SQLITE_DT_REGEXP), "sqlite"
    )


def date() -> TypeEngine[Any]:
    return Date()


class _MySQLJson(UserDefinedType[str]):
    """Renders ``json`` in DDL but moves values as text, so callers see the stored JSON string."""

    cache_ok = True

    def get_col_spec(self, **_: Any) -> str:
        return "json"


def json_text() -> TypeEngine[Any]:
    return _mysql(Text(), _MySQLJson())


def varchar_bin(length: int) -> TypeEngine[Any]:
    """A case-sensitive ``varchar`` (``utf8mb3_bin``), as production's ``stripe_customer_id``."""
    return _mysql(String(length), mysql.VARCHAR(length, charset="utf8mb3", collation="utf8mb3_bin"))


def text() -> TypeEngine[Any]:
    return Text()


class CurrentTimestampOnUpdate(FunctionElement[Any]):
    """Server default ``CURRENT_TIMESTAMP ON UPDATE CURRENT_TIMESTAMP`` (MySQL) or
    ``CURRENT_TIMESTAMP`` elsewhere, where the application's ``onupdate`` does the rest."""

    name = "current_timestamp_on_update"
    inherit_cache = True


@compiles(CurrentTimestampOnUpdate)
def _ts_default(element: CurrentTimestampOnUpdate, compiler: Any, **kw: Any) -> str:
    return "CURRENT_TIMESTAMP"


@compiles(CurrentTimestampOnUpdate, "mysql")
@compiles(CurrentTimestampOnUpdate, "mariadb")
def _ts_default_mysql(element: CurrentTimestampOnUpdate, compiler: Any, **kw: Any) -> str:
    return "CURRENT_TIMESTAMP ON UPDATE CURRENT_TIMESTAMP"
