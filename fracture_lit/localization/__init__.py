"""Where does the model look? Grad-CAM scored against the radiologists' fracture regions.

One job per module, each importable alone (the package imports nothing, so a report can
use :mod:`.paired` without torch):

* :mod:`.regions`: COCO regions per image file name, checked against the files;
* :mod:`.geometry`: regions mapped through the geometry the model saw;
* :mod:`.scores`: per-image scores of one heatmap (pointing game, energy, IoU, box hits);
* :mod:`.baselines`: random and centre-prior heatmaps;
* :mod:`.heatmaps`: Grad-CAM maps with the review's machinery, and their ``.npz`` file;
* :mod:`.scoring`: means with bootstrap CIs per image group and method;
* :mod:`.localize`: one split end to end -> the ``metrics.json`` block;
* :mod:`.paired`: two jobs' scores on the same images, paired (sweeps).
"""
