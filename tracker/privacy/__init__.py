"""Privacy at the edge: consent per request, pseudonyms, minimised fields (docs/privacy.md)."""
