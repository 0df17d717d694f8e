"""One module per ``neko`` subcommand: ``HELP``, ``add_arguments(parser)`` and ``run(args) -> exit code``."""
