"""One module per subcommand; each exposes `run(options) -> exit code`."""
