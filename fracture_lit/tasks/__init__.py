"""The library code behind each entry point (the entry points only wire): ``tuning`` (tune)."""
