from mynahil.cli import main

main()
