from densa.cli import main

main()
