from verbal.cli import main

main()
