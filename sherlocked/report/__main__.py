from sherlocked.report.cli import main

main()
