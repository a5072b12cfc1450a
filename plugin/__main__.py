from lucerag.cli import main

main()
