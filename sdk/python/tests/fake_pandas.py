"""Just enough of a pandas DataFrame for the collector and the sample (pandas cannot be installed here).

The collector only relies on ``to_dict(orient="records")``; this class is found by duck typing, exactly as
a real DataFrame is.
"""

import math


class DataFrame:
    def __init__(self, data):
        if isinstance(data, dict):
            self._columns = {str(k): list(v) for k, v in data.items()}
        else:
            keys = []
            for row in data:
                keys.extend(k for k in row if k not in keys)
            self._columns = {k: [row.get(k, math.nan) for row in data] for k in keys}

    def __len__(self):
        return len(next(iter(self._columns.values()), []))

    def to_dict(self, orient="dict"):
        if orient == "records":
            return [{k: v[i] for k, v in self._columns.items()} for i in range(len(self))]
        if orient == "list":
            return {k: list(v) for k, v in self._columns.items()}
        if orient == "dict":
            return {k: dict(enumerate(v)) for k, v in self._columns.items()}
        raise ValueError("orient %r not supported" % orient)
