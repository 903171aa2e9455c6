"""The web app behind ``python -m fracture_lit.serve``: upload checks, model card, Gradio page.

Thin over the library: the checkpoint loader, the input pipeline, the image reader, the
pixel-limit check and the Grad-CAM panel code are the ones eval and predict use, so the
page shows exactly what ``python -m fracture_lit.predict`` writes for the same file.
"""
