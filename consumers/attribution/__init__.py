"""Conversion attribution: which click earned a conversion, decided exactly once.

rules.py decides from the facts (pure); records.py is the attribution table's item formats;
table.py its DynamoDB calls; decider.py decides a batch's conversions as the stream delivers
them; matcher.py decides later the conversions parked to wait for their click.
See docs/attribution.md.
"""
