from demo.pipeline import main

main()
