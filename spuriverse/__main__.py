from spuriverse.cli import run

run()
