"""Released benchmark files -> rows; bad data -> BadRow naming its field (the readers' shared plumbing).

    iter_rows(path)            (line, object or BadRow) per record of a .jsonl / .json / .parquet file
    data_files(path, pattern)  the file itself, or the matching files under a folder (parquet preferred)
    text / number / string_list(obj, key)  typed field access that raises BadRow naming the field
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from typing import Any, NamedTuple

from vlatent_jax.data.manifest import iter_objects


class BadRow(ValueError):
  """Bad data in one row: the row is skipped and reported with `field`."""

  def __init__(self, reason: str, field: str | None = None):
    super().__init__(reason)
    self.field = field


class SkippedRow(NamedTuple):
  line: int                   # 1-based line / element / row; 0 for a whole file
  reason: str
  video: str | None = None
  file: str | None = None
  field: str | None = None


# ---------------------------------------------------------------------------- field access


def present(value) -> bool:
  return value is not None and not (isinstance(value, str) and not value.strip())


def text(obj: dict, *keys: str, required: bool = True) -> str | None:
  """The first of `keys` with a value, as stripped text (numbers allowed); BadRow naming the field otherwise."""
  for key in keys:
    value = obj.get(key)
    if not present(value):
      continue
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
      raise BadRow(f"field '{key}' must be text, got {type(value).__name__}", key)
    return str(value).strip()
  if required:
    raise BadRow(f"missing field '{keys[0]}'", keys[0])
  return None


def number(obj: dict, key: str) -> float | None:
  value = obj.get(key)
  if value is None:
    return None
  if isinstance(value, bool) or not isinstance(value, (int, float)):
    raise BadRow(f"field '{key}' must be a number of seconds, got {type(value).__name__}", key)
  return float(value)


def string_list(obj: dict, key: str) -> list:
  value = obj.get(key)
  if value is None:
    raise BadRow(f"missing field '{key}'", key)
  if not isinstance(value, list):
    raise BadRow(f"field '{key}' must be a list of strings, got {type(value).__name__}", key)
  odd = next((v for v in value if isinstance(v, bool) or not isinstance(v, (str, int, float))), None)
  if odd is not None:
    raise BadRow(f"field '{key}' must be a list of strings, holds a {type(odd).__name__}", key)
  return value


# ---------------------------------------------------------------------------- files and rows


def parquet_rows(path: str) -> Iterator[tuple[int, Any]]:
  import pyarrow as pa
  import pyarrow.parquet as pq

  try:
    table = pq.read_table(path)
  except pa.ArrowException as e:  # an unreadable file stops the run, naming itself
    raise ValueError(f"cannot read parquet file {path}: {e}") from e
  yield from enumerate(table.to_pylist(), start=1)


def iter_rows(path: str) -> Iterator[tuple[int, Any]]:
  """(line, object or BadRow) per record of a .jsonl / .json (array, or {"data": [...]}) / .parquet file."""
  if path.endswith(".parquet"):
    yield from parquet_rows(path)
    return
  with open(path, encoding="utf-8") as f:
    head = f.read(4096).lstrip()
  if head.startswith("{") and not path.endswith(".jsonl"):
    try:  # one JSON object: HF-style {"data": [...]} or a nested layout handled by its reader
      with open(path, encoding="utf-8") as f:
        obj = json.load(f)
      rows = obj.get("data") if isinstance(obj, dict) else None
      yield from enumerate(rows if isinstance(rows, list) else [obj], start=1)
      return
    except json.JSONDecodeError:
      pass  # JSON Lines with a .json name
  for line, obj in iter_objects(path):
    yield line, (BadRow(str(obj)) if isinstance(obj, ValueError) else obj)


def data_files(path: str, pattern: str) -> list[str]:
  """`path` itself, or the files under the folder `path` whose path below it matches `pattern` (sorted);
  parquet files only where the folder holds parquet and JSON copies of the data."""
  if os.path.isfile(path):
    return [path]
  if not os.path.isdir(path):
    raise FileNotFoundError(f"benchmark data not found: {path}")
  found = sorted(os.path.join(d, n) for d, _, names in os.walk(path) for n in names
                 if re.search(pattern, os.path.relpath(os.path.join(d, n), path).replace(os.sep, "/")))
  if not found:
    raise FileNotFoundError(f"no files matching {pattern!r} under {path}")
  parquet = [f for f in found if f.endswith(".parquet")]
  return parquet or found
