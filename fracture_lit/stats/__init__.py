"""Statistics: the bottom layer every score, interval and test is computed with.

One job per module, each written once:

* :mod:`.splits`: the split and stage names (``train``/``val``/``test``, report stages);
* :mod:`.catalogue`: the one list of metrics every table and report shows;
* :mod:`.auroc`: the AUROC (Mann-Whitney with midranks, so ties count one half);
* :mod:`.delong`: DeLong's covariance of correlated AUROCs and its paired test;
* :mod:`.mcnemar`: McNemar's test on paired right/wrong decisions;
* :mod:`.paired`: the paired difference every comparison reports, and a sign-flip test;
* :mod:`.bootstrap`: the percentile bootstrap behind every interval;
* :mod:`.calibration`: ECE, Brier score and reliability bins;
* :mod:`.temperature`: temperature scaling (fit on validation, apply everywhere);
* :mod:`.youden`: the Youden-J operating point chosen on validation.

Nothing here imports another fracture_lit layer (only :mod:`fracture_lit.errors` is
allowed). This file, :mod:`.splits`, :mod:`.catalogue` and :mod:`.paired` import no torch: a sweep's report
runs in the launcher process without it. The other modules take numpy, scipy or torch as
their maths needs.
"""

#: Significance level of every interval (95%) and paired test in the reports.
ALPHA = 0.05
#: No interval on fewer images than this (subgroups, localization groups): intervals on a
#: handful of images are noise; the point estimate is shown alone.
MIN_IMAGES_FOR_CI = 10
