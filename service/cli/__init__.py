"""The `parley` command line (entry point: service.cli.parley:main)."""
