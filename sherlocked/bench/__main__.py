from sherlocked.bench.cli import main

main()
