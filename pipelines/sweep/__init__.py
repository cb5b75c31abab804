"""Sweeps (``adl sweep``): ``run.py`` is the composition root (parent run, Tune, the closing lines);
``config.py`` reads the sweep file, ``plan.py`` resolves names, storage and state, ``signature.py``
and ``verified_storage.py`` sign a sweep's state and hand a resume only what was checked,
``plots.py`` draws the parent run's pictures. Tune itself is in ``pipelines/distributed/``."""
