from synthloom.cli import main

main()
