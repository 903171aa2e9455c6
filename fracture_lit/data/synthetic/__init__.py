"""The embedded synthetic radiographs: :mod:`.render` draws one image, :mod:`.store` writes
and checks a dataset folder; :mod:`fracture_lit.data.datasets.synthetic` is the dataset."""
