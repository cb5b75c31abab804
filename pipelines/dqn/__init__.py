"""The DQN driver (``adl train dqn``): ``train.py`` is the composition root; ``run.py`` builds one
training from its config, ``loop.py`` drives it (the same loop for one process and for Ray),
``local_wiring.py`` keeps everything in this process (Ray's wiring is ``pipelines/distributed/``),
``checkpoint.py`` / ``checkpoint_check.py`` / ``lease.py`` write, check and guard its checkpoints,
``metrics.py`` and ``artifacts.py`` say what reaches MLflow, ``replay_export.py`` is ``adl replay export``."""
