from chargegrid.cli import main

main()
