"""Turns what scoring code has (a DataFrame, records, columns) into JSON the collect API takes."""

import base64
import json
import math


def _clean(value):
    # JSON has no NaN/Infinity, and numpy/pandas scalars are not JSON types: map them the way pandas'
    # to_json does (NaN -> null, scalars -> Python values, timestamps -> ISO strings).
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    if isinstance(value, (bytes, bytearray)):
        return base64.b64encode(bytes(value)).decode("ascii")
    if hasattr(value, "tolist") and callable(value.tolist):
        return _clean(value.tolist())
    if hasattr(value, "item") and callable(value.item):
        try:
            return _clean(value.item())
        except (TypeError, ValueError):
            pass
    if hasattr(value, "isoformat") and callable(value.isoformat):
        return value.isoformat()
    return str(value)


def _type_name(data):
    cls = type(data)
    return "%s.%s" % (cls.__module__, cls.__qualname__)


def normalize(data):
    """Returns ``(json_ready_data, collectdatatype)`` or raises ``ValueError`` naming the problem."""
    to_dict = getattr(data, "to_dict", None)
    if callable(to_dict) and not isinstance(data, dict):
        # A pandas DataFrame, found by duck typing so that pandas is never imported here.
        records = to_dict(orient="records")
        if not isinstance(records, list):
            raise ValueError("%s.to_dict(orient='records') did not return a list" % _type_name(data))
        if not records:
            raise ValueError("data has no rows")
        return _clean(records), _type_name(data)
    if isinstance(data, (list, tuple)):
        # The collector refuses a whole NDJSON batch for one bad call, so bad calls never leave the client.
        if not data:
            raise ValueError("data has no rows")
        for i, row in enumerate(data):
            if not isinstance(row, dict):
                raise ValueError("row %d is not a dict: records are [{'column': value, ...}, ...]" % i)
        return _clean(list(data)), "builtins.list"
    if isinstance(data, dict):
        length = None
        for column, values in data.items():
            if not isinstance(values, (list, tuple)) and not hasattr(values, "tolist"):
                raise ValueError("column %r is not a list: columns are {'column': [values...], ...}" % column)
            n = len(values)
            if length is not None and n != length:
                raise ValueError("column %r has %d values, the others %d" % (column, n, length))
            length = n
        if not length:
            raise ValueError("data has no rows")
        return _clean(data), "builtins.dict"
    raise ValueError(
        "cannot collect %s: pass a pandas DataFrame, a list of dicts or a dict of lists" % _type_name(data)
    )


def dumps(value):
    return json.dumps(value, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
