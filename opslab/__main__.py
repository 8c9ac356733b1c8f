from opslab.cli.main import entry

entry()
