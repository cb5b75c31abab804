"""The ``adl`` command line: ``main.py`` (the entry point and exit codes), ``args.py`` (every
subcommand's arguments), ``submit.py`` (``adl submit`` and ``adl jobs``)."""
