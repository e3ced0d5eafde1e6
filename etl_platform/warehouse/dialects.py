"""SQL written once, in DuckDB's dialect, compiled for the other engines with sqlglot.

``compile_script`` parses a script (or one query) as DuckDB SQL and writes each statement for the target
engine, after the rewrites sqlglot does not do by itself:

- ``CREATE OR REPLACE TABLE t AS q`` becomes ``DROP TABLE IF EXISTS t`` + ``CREATE TABLE t AS q`` (run in one
  transaction, so readers still see the old table or the new one);
- ``try_cast(x AS T)`` becomes the engine's ``try_cast_<t>(x)`` (``sql/macros.<engine>.sql`` defines them: a
  value that does not convert is NULL, as in DuckDB);
- ``GROUP BY ALL`` lists the projections that are not aggregates; ``ANTI JOIN`` / ``SEMI JOIN`` become
  ``NOT EXISTS`` / ``EXISTS``; a subquery in ``FROM`` gets an alias; ``format('{}', ...)`` becomes ``%s``;
  ``json_object(...)`` becomes ``json_build_object(...)`` (PostgreSQL) or ``to_json(named_struct(...))`` (Spark).

On Spark, ``timezone(zone, t)`` becomes ``from_utc_timestamp``; ``try_cast`` stays (Spark has it) and ``CREATE OR REPLACE TABLE`` stays: the Spark session writes the
new table beside the old one and swaps them (``spark_warehouse``).

The parsing rules that the SQL files call (``clean_text``, ``as_integer``, ...) are macros: each engine
defines them in ``sql/macros.<engine>.sql`` with DuckDB's meaning. A statement an engine cannot run is an
:class:`SqlScriptError` naming the file, the statement and the engine.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from functools import lru_cache

import sqlglot
from sqlglot import exp

from etl_platform.warehouse.base import SqlScriptError

SQLGLOT_DIALECTS = {"duckdb": "duckdb", "postgres": "postgres", "spark": "spark"}


@dataclass(frozen=True)
class Statement:
    sql: str
    number: int  # 1-based position in its script
    source: str  # the statement as written (shortened), for error messages


def compile_script(text: str, engine: str, where: str) -> list[Statement]:
    """Each statement of ``text`` (DuckDB SQL) written for ``engine``; ``where`` names the script in errors."""
    return list(_compile(text, engine, where))


@lru_cache(maxsize=256)
def _compile(text: str, engine: str, where: str) -> tuple[Statement, ...]:
    try:
        parsed = sqlglot.parse(text, read="duckdb")
    except sqlglot.errors.ParseError as error:
        raise SqlScriptError(f"{where} could not be parsed as DuckDB SQL (to compile it for {engine}): {error}") from None
    statements: list[Statement] = []
    for number, tree in enumerate((t for t in parsed if t is not None), start=1):
        source = shorten(tree.sql(dialect="duckdb"))
        try:
            for rewritten in _rewrite(tree, engine):
                statements.append(Statement(rewritten.sql(dialect=SQLGLOT_DIALECTS[engine]), number, source))
        except (sqlglot.errors.SqlglotError, ValueError) as error:
            raise SqlScriptError(
                f"{where}, statement {number} ({source}) cannot be written for {engine}: {error}") from None
    return tuple(statements)


def shorten(sql: str, limit: int = 160) -> str:
    sql = " ".join(sql.split())
    return sql if len(sql) <= limit else sql[: limit - 1] + "…"


def _rewrite(tree: exp.Expression, engine: str) -> list[exp.Expression]:
    # Spark has try_cast, and its session replaces tables itself (write beside, then swap).
    tree = _temporary_view(tree) if engine == "spark" else tree.transform(_try_cast)
    tree = tree.transform(_group_by_all).transform(_semi_anti_join)
    tree = _alias_subqueries(tree).transform(_format_placeholders)
    if engine == "spark":
        return [tree.transform(_json_object_spark).transform(_timezone_spark)]
    if engine == "postgres":
        tree = tree.transform(_json_object).transform(_round_numeric)
    return _replace_table(tree)


def _round_numeric(node: exp.Expression) -> exp.Expression:
    """PostgreSQL rounds to decimal places only a numeric (no round(double precision, integer)); DuckDB rounds any
    number. sqlglot casts the argument when it can tell its type, not always (a window's quotient): cast it here."""
    if isinstance(node, exp.Round) and node.args.get("decimals") is not None:
        value = node.this
        if not (isinstance(value, exp.Cast) and value.to.is_type(exp.DataType.Type.DECIMAL)):
            node.set("this", exp.Cast(this=value.copy(), to=exp.DataType.build("DECIMAL")))
    return node


def _replace_table(tree: exp.Expression) -> list[exp.Expression]:
    if isinstance(tree, exp.Create) and tree.args.get("replace") and (tree.args.get("kind") or "").upper() == "TABLE":
        drop = sqlglot.parse_one(f"DROP TABLE IF EXISTS {tree.this.sql(dialect='duckdb')}", read="duckdb")
        create = tree.copy()
        create.set("replace", False)
        return [drop, create]
    return [tree]


def is_temporary(tree: exp.Expression) -> bool:
    """A ``CREATE TEMP ...`` statement."""
    properties = tree.args.get("properties") if isinstance(tree, exp.Create) else None
    return bool(properties and any(isinstance(p, exp.TemporaryProperty) for p in properties.expressions))


def _temporary_view(tree: exp.Expression) -> exp.Expression:
    """A script's ``CREATE [OR REPLACE] TEMP TABLE`` is a temporary view on Spark (replaced, if a failed run left one)."""
    if is_temporary(tree) and (tree.args.get("kind") or "").upper() == "TABLE":
        tree = tree.copy()
        tree.set("kind", "VIEW")
        tree.set("replace", True)
    return tree


def _try_cast(node: exp.Expression) -> exp.Expression:
    if isinstance(node, exp.TryCast):
        type_name = node.to.sql(dialect="duckdb").lower().replace(" ", "_")
        return exp.Anonymous(this=f"try_cast_{type_name}", expressions=[node.this])
    return node


def _group_by_all(node: exp.Expression) -> exp.Expression:
    group = node.args.get("group") if isinstance(node, exp.Select) else None
    if group is None or not group.args.get("all"):
        return node
    keys = [projection.unalias().copy() for projection in node.expressions
            if not projection.find(exp.AggFunc) and not isinstance(projection.unalias(), exp.Literal)]
    node = node.copy()
    node.set("group", exp.Group(expressions=keys) if keys else None)
    return node


def _semi_anti_join(node: exp.Expression) -> exp.Expression:
    if not isinstance(node, exp.Select) or not any(
            (join.args.get("kind") or "").upper() in ("SEMI", "ANTI") for join in node.args.get("joins") or []):
        return node
    node = node.copy()
    source = (node.args.get("from_") or node.args.get("from")).this
    left = source.alias_or_name
    kept, conditions = [], []
    for join in node.args.get("joins") or []:
        kind = (join.args.get("kind") or "").upper()
        if kind not in ("SEMI", "ANTI"):
            kept.append(join)
            continue
        right = join.this.copy()
        right_name = right.alias_or_name
        using = join.args.get("using") or []
        on = join.args.get("on")
        matches = [exp.column(column.name, right_name).eq(exp.column(column.name, left)) for column in using]
        condition = exp.and_(*matches, *([on.copy()] if on is not None else []))
        exists = exp.Exists(this=exp.select("1").from_(right).where(condition))
        conditions.append(exp.Not(this=exists) if kind == "ANTI" else exists)
    node.set("joins", kept or None)
    return node.where(exp.and_(*conditions), copy=False)


def _alias_subqueries(tree: exp.Expression) -> exp.Expression:
    numbers = itertools.count(1)

    def alias(node: exp.Expression) -> exp.Expression:
        if isinstance(node, exp.Subquery) and not node.alias and isinstance(node.parent, (exp.From, exp.Join)):
            node = node.copy()
            node.set("alias", exp.TableAlias(this=exp.to_identifier(f"_subquery_{next(numbers)}")))
        return node

    return tree.transform(alias)


def _format_placeholders(node: exp.Expression) -> exp.Expression:
    """DuckDB's ``format('{} of {}', a, b)`` → ``%s`` placeholders. A pattern written as adjacent string literals
    (``'... ' '...'``, one literal to DuckDB, parsed as a concatenation) is joined into one literal first."""
    if isinstance(node, exp.Anonymous) and node.name.lower() == "format" or isinstance(node, exp.Format):
        node = node.copy()
        pattern = node.this if isinstance(node, exp.Format) else node.expressions[0]
        text = _string_constant(pattern)
        if text is not None:
            pattern.replace(exp.Literal.string(text.replace("%", "%%").replace("{}", "%s")))
    return node


def _string_constant(node: exp.Expression) -> str | None:
    """The text of a string literal, or of a concatenation of string literals; None for anything else."""
    if isinstance(node, exp.Literal):
        return node.this if node.is_string else None
    if isinstance(node, (exp.Concat, exp.DPipe)):
        parts = [_string_constant(part) for part in (node.expressions if isinstance(node, exp.Concat)
                                                     else (node.this, node.expression))]
        return None if any(part is None for part in parts) else "".join(parts)
    if isinstance(node, exp.Paren):
        return _string_constant(node.this)
    return None


def _json_object_spark(node: exp.Expression) -> exp.Expression:
    """``json_object(k, v, ...)`` → ``to_json(named_struct(k, v, ...))``, keeping NULL fields as DuckDB does."""
    if isinstance(node, exp.JSONObject):
        arguments = _json_pairs(node)
        options = exp.Anonymous(this="map", expressions=[exp.Literal.string("ignoreNullFields"),
                                                         exp.Literal.string("false")])
        return exp.Anonymous(this="to_json", expressions=[exp.Anonymous(this="named_struct", expressions=arguments),
                                                          options])
    return node


def _timezone_spark(node: exp.Expression) -> exp.Expression:
    """DuckDB's ``timezone(zone, t)`` (the wall clock of instant t in zone) → Spark's from_utc_timestamp, as a
    timestamp without zone (the session's time zone is UTC)."""
    if isinstance(node, exp.Anonymous) and node.name.lower() == "timezone" and len(node.expressions) == 2:
        zone, value = node.expressions
        shifted = exp.Anonymous(this="from_utc_timestamp", expressions=[value.copy(), zone.copy()])
        return exp.Cast(this=shifted, to=exp.DataType.build("TIMESTAMP_NTZ", dialect="spark"))
    return node


def _json_object(node: exp.Expression) -> exp.Expression:
    if isinstance(node, exp.JSONObject):
        return exp.Anonymous(this="json_build_object", expressions=_json_pairs(node))
    return node


def _json_pairs(node: exp.JSONObject) -> list[exp.Expression]:
    """``json_object``'s keys and values, flat: k1, v1, k2, v2, ..."""
    arguments = []
    for pair in node.expressions:
        arguments += [pair.this.copy(), pair.expression.copy()]
    return arguments
