"""The built-in datasets: one module each, registered by name.

Every module here is imported by :mod:`fracture_lit.data.registry` before a lookup, so a
new built-in dataset is this folder's new module plus its ``conf/data/<name>.yaml``.
Nothing is imported here: the registry finds the modules itself.
"""
