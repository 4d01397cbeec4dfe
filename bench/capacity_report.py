"""The capacity part of bench/results/latest.md: the figures docs/capacity.md is built from."""

from __future__ import annotations

from typing import Any


def capacity_lines(part: dict[str, Any]) -> list[str]:
    lines = [
        "",
        "## Capacity figures",
        "",
        f"Run {part.get('started', '?')}; medians of {part['rounds']} run(s), ranges in "
        "latest.json. See docs/capacity.md for the model built on them.",
        "",
    ]
    lines += _size_lines(part["sizes"])
    lines += _cpu_lines(part["tracker"], part["consumer"])
    lines += _check_lines(part["check"])
    return lines


def _size_lines(sizes: dict[str, Any]) -> list[str]:
    lines = [
        "| event | share | event bytes | Kinesis record bytes | DynamoDB item bytes | "
        "index entry bytes | write units | storage bytes |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for row in [*sizes["kinds"], {"kind": "mix", "share": 1.0, **sizes["mix"]}]:
        lines.append(
            f"| {row['kind']} | {row['share']:.3f} | {row['event_bytes']} | "
            f"{row['kinesis_record_bytes']} | {row['item_bytes']} | {row['index_entry_bytes']} | "
            f"{row['write_units']} | {row['storage_bytes']} |"
        )
    agg = sizes["aggregated"]
    lines += [
        "",
        f"Aggregated (the shipper's `pack`, {agg['events']:,} events of the mix): "
        f"{agg['events_per_record']} events per record of {agg['mean_record_bytes']:,} bytes, "
        f"{agg['record_bytes_per_event']} bytes and {agg['payload_units_per_event']} PUT "
        "payload units per event.",
        "",
    ]
    return lines


def _cpu_lines(tracker: dict[str, Any], consumer: dict[str, Any]) -> list[str]:
    lines = [
        "| process | case | CPU us per request or event (median) | runs |",
        "| --- | --- | --- | --- |",
    ]
    for mode, figures in tracker.items():
        for route in ("pixel", "click"):
            runs = ", ".join(str(r["us_per_request"]) for r in figures[route]["runs"])
            lines.append(
                f"| tracker ({mode} shipping) | {route} | "
                f"{figures[route]['median']['us_per_request']} | {runs} |"
            )
    for mode in ("plain", "aggregated"):
        runs = ", ".join(str(r["us_per_event"]) for r in consumer[mode]["runs"])
        lines.append(
            f"| events consumer | {mode} records | {consumer[mode]['median']['us_per_event']} | "
            f"{runs} |"
        )
    return [*lines, ""]


def _check_lines(check: dict[str, Any]) -> list[str]:
    answered = check["answered"]
    return [
        f"Local check: {check['trackers']} trackers, {check['consumers']} consumers, "
        f"{check['shards']} shards; {answered['pixel']:,} pixels and {answered['click']:,} clicks "
        f"answered, {check['items']:,} items ({check['distinct_message_ids']:,} distinct message "
        f"ids, {check['missing']} missing, {check['message_ids_with_more_than_one_item']} with "
        f"more than one item), all stored {check['seconds_until_all_stored']} s after the first "
        f"request; tracker CPU {check['tracker_cpu_us_per_request']} us per request, consumer "
        f"CPU {check['consumer_cpu_us_per_event']} us per event "
        f"({check['consumer_cpu_us_per_event_less_idle']} less idle polling).",
        "",
    ]
