from jaz.cli.app import main

main()
