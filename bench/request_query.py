"""`request.query` as aiohttp makes it, and what that costs: paid by every request before the
handler's first check sees its parameters, so the in-process benchmarks show it for scale.

aiohttp's C parser builds a yarl URL from the request target (URL.build with the encoded path and
query), and `request.query` is that URL's parsed query. yarl keeps the last 128 URLs it built
(`build_pre_encoded_url`, an lru_cache) with their parsed query, so a target seen just before
costs a lookup and a copy, a new one the parse.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

from multidict import MultiDictProxy
from yarl import URL

from bench.micro import per_call

Query = MultiDictProxy[str]


def request_query(path_and_query: str) -> Query:
    """`request.query` for a request target ("/v1/pixel?program=...")."""
    path, _, query_string = path_and_query.partition("?")
    return URL.build(path=path, query_string=query_string, encoded=True).query


def query_parse(targets: Sequence[str]) -> Callable[[], float]:
    """A repetition (microseconds per call) of aiohttp's URL and query for each target."""
    parts = [target.partition("?") for target in targets]
    calls = len(parts)

    def repetition() -> float:
        started = time.perf_counter()
        for path, _, query_string in parts:
            URL.build(path=path, query_string=query_string, encoded=True).query  # noqa: B018
        return per_call(time.perf_counter() - started, calls)

    return repetition
