from factory.cli import app

app(prog_name="factory")
