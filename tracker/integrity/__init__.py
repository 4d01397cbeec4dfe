"""Traffic integrity at the edge: crawlers, prefetch, signed links, duplicate clicks."""
