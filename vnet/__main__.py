from vnet.cli import main

main()
