from sherlocked.train import main

main()
